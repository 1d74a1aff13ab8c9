"""Confidence map -> L3 row, with a confidence and a decision, on the processed grid.

Two decoders, chosen by name (``eval.decoder`` in the config):

- ``argmax``: the design card's decoder. Row score = maximum of the map over the kept central
  columns; the L3 row is the row with the highest score (an integer row, no offset).
- ``profile``: the same row score, smoothed along rows with a Gaussian of ``smooth_mm`` (a lone
  hot pixel no longer wins over a consistent band) and refined to a sub-pixel peak by fitting a
  parabola through the best row and its two neighbours (removes up to half a pixel of
  quantisation error, which matters when pixels are 2 mm). On a flat-topped band the card's
  ``argmax`` returns the band's first row (a bias of up to the band's half-height upwards);
  the smoothed profile peaks at the band's centre.

Both views of a case share one row grid (rows are axial slices resampled to ``spacing_mm``), so
their row profiles can be fused row by row (``fuse_profiles``) and decoded like one view's.

``classify`` turns a decoded profile into a decision: ``not_found`` when the peak is below a
threshold (L3 not in the scan), ``ambiguous`` when a second peak of similar height lies at least
one vertebra away (both candidates are reported) or when the peak lies at the scan's end
(:func:`scan_end`), else ``found``.

Rows are processed rows; ``CaseGeometry`` maps them back to native rows, file slices and z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from l3loc.preprocess import side_mask_cols

DECODERS = ("argmax", "profile")
STATUSES = ("found", "not_found", "ambiguous")

#: how far (mm) another reading of L3 may lie from the decision's and still be the same vertebra
#: (less than half a vertebra's height); also how near the scan's end an L3 row is never found
#: (about half an L3 body: :func:`scan_end`)
MAX_DISAGREEMENT_MM = 15.0


@dataclass(frozen=True)
class Decoded:
    """A decoded map: the L3 row (processed pixels, float), its confidence, and the row profile
    the decoder peaked on ([H]; smoothed for ``profile``, raw for ``argmax``)."""

    row: float
    confidence: float
    profile: np.ndarray


@dataclass(frozen=True)
class Decision:
    """What a decoded profile says about L3.

    Attributes:
        status: ``found``, ``not_found`` (peak below the threshold) or ``ambiguous`` (a second
            peak at least ``min_separation_mm`` away reaches ``ambiguity_ratio`` of the first).
        row: best row (processed pixels, float); reported for every status.
        confidence: profile value at ``row``'s peak.
        second_row: the highest other peak at least ``min_separation_mm`` away (NaN if none).
        second_confidence: its profile value (0.0 if none).
        reason: why the status is ``ambiguous`` beyond a second peak (empty otherwise).
        folds: each fold's own L3 claim of an ensemble, ``(name, row, confidence)``
            (:func:`with_fold_claims`), kept so the decision can be made again at another threshold.
        scan_end: ``upper`` or ``lower`` when ``row`` lies at that end of the scan
            (:func:`scan_end`; such a row is never ``found``), else empty.
    """

    status: str
    row: float
    confidence: float
    second_row: float
    second_confidence: float
    reason: str = ""
    folds: tuple = ()
    scan_end: str = ""


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


def decode_profile(profile: np.ndarray, decoder: str = "profile", spacing_mm: float = 1.0,
                   smooth_mm: float = 2.0) -> Decoded:
    """Decode a raw row profile [H] (one view's ``row_profile``, or ``fuse_profiles`` of both).

    Args:
        profile: [H] row scores in [0, 1] on the processed grid.
        decoder: ``"argmax"`` or ``"profile"`` (see module docstring).
        spacing_mm: processed pixel size, to express ``smooth_mm`` in rows.
        smooth_mm: Gaussian sigma of the ``profile`` decoder.

    Returns:
        Decoded(row, confidence = the profile's value at the peak, decoded profile).
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}: expected one of {DECODERS}")
    profile = np.asarray(profile, dtype=np.float32)
    if profile.ndim != 1 or profile.size == 0:
        raise ValueError(f"profile must be 1-D and non-empty, got shape {profile.shape}")
    if decoder == "argmax":
        row = int(np.argmax(profile))
        return Decoded(float(row), float(profile[row]), profile)
    # zeros beyond the ends ("no L3 outside the scan"): a band cut by the image edge then keeps
    # its centre, where repeating the edge row ("nearest") would pull the peak onto the edge
    smooth = gaussian_filter1d(profile.astype(np.float64), smooth_mm / spacing_mm,
                               mode="constant").astype(np.float32)
    # the peak is found on the float32 profile that is returned, so classify() on
    # Decoded.profile gives the same row to the last bit
    values = smooth.astype(np.float64)
    row = int(np.argmax(values))
    return Decoded(_subpixel_peak(values, row), float(values[row]), smooth)


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
    return decode_profile(profile, decoder, spacing_mm, smooth_mm)


def fuse_profiles(profiles: Sequence[np.ndarray]) -> np.ndarray:
    """Row-wise mean of several views' row profiles of one case (same processed row grid).

    The mean keeps the scale of one view's probabilities (so one threshold reads the same way)
    and lets a confident view outvote an unsure one; it is linear, so fusing smoothed profiles
    equals smoothing the fused raw profile.

    Args:
        profiles: one or more [H] arrays (raw ``row_profile`` or ``Decoded.profile``).

    Returns:
        float32 [H].

    Raises:
        ValueError: no profile, or profiles of different lengths (the views of one case always
            have the same number of processed rows; a mismatch means two different cases).
    """
    arrays = [np.asarray(p, dtype=np.float32) for p in profiles]
    if not arrays:
        raise ValueError("fuse_profiles needs at least one profile")
    lengths = sorted({a.shape for a in arrays})
    if len(lengths) != 1 or len(lengths[0]) != 1:
        raise ValueError(f"profiles must be 1-D of one length, got shapes {lengths}")
    return np.mean(np.stack(arrays), axis=0).astype(np.float32)


def _peak_rows(profile: np.ndarray) -> np.ndarray:
    """Integer rows of the local maxima of ``profile`` [H], the two ends included (a plateau
    counts once, at its middle)."""
    floor = float(profile.min()) - 1.0
    padded = np.concatenate([[floor], profile.astype(np.float64), [floor]])
    peaks, _ = find_peaks(padded)
    return peaks - 1


def classify(profile: np.ndarray, spacing_mm: float, threshold: float,
             ambiguity_ratio: float = 0.8, min_separation_mm: float = 20.0,
             subpixel: bool = True) -> Decision:
    """Decide ``found`` / ``not_found`` / ``ambiguous`` from a decoded row profile.

    Args:
        profile: [H] decoded profile (``Decoded.profile``, or ``fuse_profiles`` of several).
        spacing_mm: processed row spacing (mm), to express ``min_separation_mm`` in rows.
        threshold: peak confidence below which L3 is ``not_found``.
        ambiguity_ratio: a second peak at least this fraction of the first makes the case
            ``ambiguous``.
        min_separation_mm: the second peak must lie at least this far from the first (about one
            vertebra: closer maxima are the same band's ripples, not another candidate).
        subpixel: refine both rows with the parabola of the ``profile`` decoder; pass False for
            ``argmax`` (integer rows), so the row equals ``decode``'s.

    Returns:
        Decision.
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.ndim != 1 or profile.size == 0:
        raise ValueError(f"profile must be 1-D and non-empty, got shape {profile.shape}")
    best = int(np.argmax(profile))
    confidence = float(profile[best])

    def refine(r: int) -> float:
        return _subpixel_peak(profile, r) if subpixel else float(r)

    peaks = _peak_rows(profile)
    far = peaks[np.abs(peaks - best) * spacing_mm >= min_separation_mm]
    if far.size:
        second = int(far[np.argmax(profile[far])])
        second_row, second_conf = refine(second), float(profile[second])
    else:
        second_row, second_conf = float("nan"), 0.0
    row = refine(best)
    end, reason = scan_end(row, len(profile), spacing_mm), ""
    if confidence < threshold:
        status = "not_found"
    elif end:
        status, reason = "ambiguous", scan_end_reason(end)
    elif second_conf >= ambiguity_ratio * confidence:
        status = "ambiguous"
    else:
        status = "found"
    return Decision(status, row, confidence, second_row, second_conf, reason=reason, scan_end=end)


def scan_end(row: float, n_rows: int, spacing_mm: float,
             margin_mm: float = MAX_DISAGREEMENT_MM) -> str:
    """``upper`` or ``lower`` when processed ``row`` lies within ``margin_mm`` of the scan's first
    or last processed row (row 0 is the scan's top), else empty.

    An L3 centre that close to the end is not a whole body in the scan: the body is cut, or the
    scan ends before L3 and the peak is the last vertebra it shows. The most confident negative
    phantoms are of the second kind (chest-only scans peaking within 10 mm of their lower end,
    benchmarks/README.md, twenty-fifth session), as is a real chest CT that stops at L1 or L2.
    """
    if not math.isfinite(row):
        return ""
    if row * spacing_mm < margin_mm:
        return "upper"
    if (n_rows - 1 - row) * spacing_mm < margin_mm:
        return "lower"
    return ""


def scan_end_reason(end: str) -> str:
    """Why a row at the scan's ``end`` (:func:`scan_end`) is ``ambiguous``."""
    before = "stops above" if end == "lower" else "starts below"
    return (f"L3 lies within {MAX_DISAGREEMENT_MM:.0f} mm of the scan's {end} end: its body is cut "
            f"there, or the scan {before} L3")


def offset_words(rows: float, spacing_mm: float) -> str:
    """A row offset in words a reader of a scan uses: "30 mm higher" (cranial: processed row 0
    is the scan's top) or "30 mm lower"."""
    return f"{abs(rows) * spacing_mm:.0f} mm {'higher' if rows < 0 else 'lower'}"


def other_vertebra_claims(claims: Sequence[tuple[str, float, float]], row: float,
                          spacing_mm: float, threshold: float,
                          max_disagreement_mm: float = MAX_DISAGREEMENT_MM) -> list:
    """The claims ``(who, row, confidence)`` at or above ``threshold`` that put L3 on another
    vertebra than ``row`` (more than ``max_disagreement_mm`` away)."""
    return [c for c in claims if c[2] >= threshold
            and abs(c[1] - row) * spacing_mm > max_disagreement_mm]


def claim_reasons(claims: Sequence[tuple[str, float, float]], row: float, spacing_mm: float) -> list[str]:
    """One reason per claim: "fold 3 on its own puts L3 30 mm higher"."""
    return [f"{who} on its own puts L3 {offset_words(r - row, spacing_mm)}" for who, r, _ in claims]


def with_fold_claims(decision: Decision, folds: Sequence[tuple[str, float, float]],
                     spacing_mm: float, threshold: float) -> Decision:
    """A single-L3 ensemble's decision checked against its folds' own peaks (``folds``: name,
    row and confidence of each fold's decoded profile): a ``found`` whose L3 a fold at or above
    ``threshold`` puts on another vertebra becomes ``ambiguous``, the surest such fold's row the
    second candidate (as :func:`l3loc.levels.decide_l3` does for a model with level channels)."""
    folds = tuple(folds)
    others = other_vertebra_claims(folds, decision.row, spacing_mm, threshold)
    if decision.status != "found" or not others:
        return replace(decision, folds=folds)
    second_row, second_conf = surest(others)
    return replace(decision, status="ambiguous", second_row=second_row,
                   second_confidence=second_conf, folds=folds,
                   reason="; ".join(claim_reasons(others, decision.row, spacing_mm)))


def surest(claims: Sequence[tuple[str, float, float]]) -> tuple[float, float]:
    """(row, confidence) of the surest of ``claims`` (non-empty): the second candidate of a row
    made ambiguous by claims on another vertebra."""
    return max(claims, key=lambda c: c[2])[1:]
