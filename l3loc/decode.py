"""Confidence map -> L3 row, with a confidence, on the processed grid.

Two decoders, chosen by name (``eval.decoder`` in the config):

- ``argmax``: the design card's decoder. Row score = maximum of the map over the kept central
  columns; the L3 row is the row with the highest score (an integer row, no offset).
- ``profile``: the same row score, smoothed along rows with a Gaussian of ``smooth_mm`` (a lone
  hot pixel no longer wins over a consistent band) and refined to a sub-pixel peak by fitting a
  parabola through the best row and its two neighbours (removes up to half a pixel of
  quantisation error, which matters when pixels are 2 mm).

Rows are processed rows; ``CaseGeometry`` maps them back to native rows, file slices and z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from l3loc.preprocess import side_mask_cols

DECODERS = ("argmax", "profile")


@dataclass(frozen=True)
class Decoded:
    """A decoded map: the L3 row (processed pixels, float), its confidence, and the row profile."""

    row: float
    confidence: float
    profile: np.ndarray


def row_profile(prob_map: np.ndarray, col_range: tuple[float, float] | None) -> np.ndarray:
    """Row score [H]: maximum of ``prob_map`` [H, W] over the kept columns (all if None)."""
    if col_range is not None:
        start, stop = side_mask_cols(prob_map.shape[1], col_range)
        prob_map = prob_map[:, start:stop]
    return prob_map.max(axis=1)


def _subpixel_peak(profile: np.ndarray, row: int) -> float:
    """Vertex of the parabola through rows row-1, row, row+1 (row itself at the edges)."""
    if row <= 0 or row >= len(profile) - 1:
        return float(row)
    left, centre, right = profile[row - 1], profile[row], profile[row + 1]
    curvature = left - 2.0 * centre + right
    if curvature >= 0:  # flat or not a maximum: no refinement
        return float(row)
    return float(row + 0.5 * (left - right) / curvature)


def decode(prob_map: np.ndarray, decoder: str = "profile", col_range=(0.35, 0.65),
           spacing_mm: float = 1.0, smooth_mm: float = 2.0) -> Decoded:
    """Decode one sigmoid confidence map [H, W] (values in [0, 1]).

    Args:
        prob_map: [H, W] probabilities on the processed grid.
        decoder: ``"argmax"`` or ``"profile"`` (see module docstring).
        col_range: kept central columns (fractions), as the band target; None = all columns.
        spacing_mm: processed pixel size, to express ``smooth_mm`` in rows.
        smooth_mm: Gaussian sigma of the ``profile`` decoder.

    Returns:
        Decoded(row, confidence = the profile's value at the peak, profile).
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}: expected one of {DECODERS}")
    profile = row_profile(np.asarray(prob_map, dtype=np.float32), col_range)
    if decoder == "argmax":
        row = int(np.argmax(profile))
        return Decoded(float(row), float(profile[row]), profile)
    smooth = gaussian_filter1d(profile.astype(np.float64), smooth_mm / spacing_mm, mode="nearest")
    row = int(np.argmax(smooth))
    return Decoded(_subpixel_peak(smooth, row), float(smooth[row]), smooth.astype(np.float32))
