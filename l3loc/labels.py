"""Training targets: a horizontal band at the L3 row, limited to the central columns.

The band is drawn from its continuous extent, not from rounded rows: pixel row ``r`` covers
``[r - 0.5, r + 0.5]``, the band covers ``[label_row - h - 0.5, label_row + h + 0.5]`` with
``h = half_height_mm / spacing_mm`` pixels, and each row's value is the fraction of it the band
covers. So an integer label row gives exactly ``2h + 1`` rows of ones (row 10, h = 2: rows
8..12), a fractional one (10.4) gives partial rows at both ends (row 8: 0.6, rows 9..12: 1,
row 13: 0.4), and while the band lies inside the image its centre of mass along rows is the
label row itself: no half-pixel bias from rounding. With a Gaussian blur the same band is
convolved with a Gaussian of ``sigma_mm`` along rows (exactly, in closed form) and rescaled so
that a pixel centred on the label row would read 1: the target stays a confidence peaking at
L3 whatever the sigma.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from l3loc.preprocess import side_mask_cols

# Same symmetric central band as the frontal side mask (35 %..65 % of the width); the reference
# notebook's band used 35 %..70 %, i.e. partly over masked, always-black columns.
DEFAULT_COL_RANGE = (0.35, 0.65)

# Below this sigma (in pixels) the blur moves at most sigma / sqrt(2 pi) < 4e-4 of a pixel's value
# across a band edge: draw the plain band (and avoid dividing by a vanishing sigma).
_MIN_SIGMA_PX = 1e-3


def _band_profile(height_px: int, label_row_px: float, half_px: float, sigma_px: float
                  ) -> np.ndarray:
    """Band value per row, float64 [H], as described in the module docstring."""
    rows = np.arange(height_px, dtype=np.float64)
    a = label_row_px - half_px - 0.5
    b = label_row_px + half_px + 0.5
    if sigma_px < _MIN_SIGMA_PX:
        return np.clip(np.minimum(rows + 0.5, b) - np.maximum(rows - 0.5, a), 0.0, 1.0)

    # Pixel value = integral over the pixel of (box [a, b] * Gaussian). With
    # S(u) = u * Phi(u) + phi(u), the antiderivative of the Gaussian CDF Phi, the running integral
    # of the blurred box is  F(x) = sigma * (S((x - a) / sigma) - S((x - b) / sigma)).
    def running(x):
        ua, ub = (x - a) / sigma_px, (x - b) / sigma_px
        s = lambda u: u * ndtr(u) + np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
        return sigma_px * (s(ua) - s(ub))

    profile = running(rows + 0.5) - running(rows - 0.5)
    peak = running(label_row_px + 0.5) - running(label_row_px - 0.5)
    return np.clip(profile / peak, 0.0, 1.0)


def band_target(height_px: int, width_px: int, label_row_px: float, half_height_mm: float,
                spacing_mm: float, col_range: tuple[float, float] = DEFAULT_COL_RANGE,
                sigma_mm: float = 0.0) -> np.ndarray:
    """Band target for one image.

    Args:
        height_px, width_px: image size.
        label_row_px: L3 row in this image's pixel rows (float; may lie outside the image, then
            only the part of the band inside is drawn); NaN (negative case or a window without
            L3) gives an all-zero target.
        half_height_mm: band half-height beyond the centre row, in mm (2 mm at 1 mm: 5 rows).
        spacing_mm: row spacing of the image in mm.
        col_range: (lo, hi) fractions of the width; the band covers the columns whose centre
            lies within them, by the same rule as the frontal side mask
            (``l3loc.preprocess.side_mask_cols``: W = 512 -> columns 179..332; W = 20 -> 7..12).
        sigma_mm: Gaussian blur along rows in mm; 0 = sharp band.

    Returns:
        float32 [H, W] in [0, 1]; zero outside the central columns.

    Raises:
        ValueError: non-positive sizes or spacing, negative half-height or sigma, infinite row,
            a column range outside [0, 1] or one that keeps no column.
    """
    if height_px < 1 or width_px < 1:
        raise ValueError(f"image size must be positive, got {height_px}x{width_px}")
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm!r}")
    if not half_height_mm >= 0 or not sigma_mm >= 0:
        raise ValueError(f"half_height_mm and sigma_mm must be >= 0, got "
                         f"{half_height_mm!r}, {sigma_mm!r}")
    target = np.zeros((height_px, width_px), dtype=np.float32)
    if np.isnan(label_row_px):
        return target
    if not np.isfinite(label_row_px):
        raise ValueError(f"label_row_px must be finite or NaN, got {label_row_px!r}")
    lo, hi = (float(v) for v in col_range)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"col_range must satisfy 0 <= lo < hi <= 1, got {col_range!r}")
    start, stop = side_mask_cols(width_px, (lo, hi))
    if stop <= start:
        raise ValueError(f"col_range {col_range!r} keeps no column of a {width_px}-px image")
    profile = _band_profile(height_px, float(label_row_px), half_height_mm / spacing_mm,
                            sigma_mm / spacing_mm)
    target[:, start:stop] = profile[:, None]
    return target


def level_targets(height_px: int, width_px: int, label_rows_px, half_height_mm: float,
                  spacing_mm: float, col_range: tuple[float, float] = DEFAULT_COL_RANGE,
                  sigma_mm: float = 0.0) -> np.ndarray:
    """One :func:`band_target` per level: float32 [len(label_rows_px), H, W]; a NaN row (level
    absent) gives an all-zero channel."""
    return np.stack([band_target(height_px, width_px, float(r), half_height_mm, spacing_mm,
                                 col_range, sigma_mm) for r in np.atleast_1d(label_rows_px)])


def annealed_sigma_mm(epoch: int, n_epochs: int, start: float = 10.0, end: float = 1.5,
                      mode: str = "linear") -> float:
    """Blur sigma for ``epoch`` (0-based) of ``n_epochs``, going from ``start`` to ``end`` mm.

    The paper anneals the blur from about 10 mm to 1.5 mm: wide targets first give the net a
    gradient from anywhere near L3, narrow ones later make it precise. ``linear`` interpolates
    the value (0 allowed: ``start = end = 0`` is no blur); ``geometric`` interpolates its
    logarithm (equal ratios per epoch, so more epochs are spent at small sigma where precision
    is learned). Epoch 0 gives ``start``, epoch ``n_epochs - 1`` and later give ``end``; a
    single epoch gives ``end``.

    Raises:
        ValueError: negative epoch, n_epochs < 1, unknown mode, negative sigma, or a geometric
            range touching 0.
    """
    if epoch < 0 or n_epochs < 1:
        raise ValueError(f"need epoch >= 0 and n_epochs >= 1, got {epoch}, {n_epochs}")
    if mode not in ("linear", "geometric"):
        raise ValueError(f"mode must be 'linear' or 'geometric', got {mode!r}")
    if start < 0 or end < 0 or (mode == "geometric" and (start <= 0 or end <= 0)):
        raise ValueError(f"sigmas must be >= 0 (> 0 for geometric), got {start}, {end}")
    t = 1.0 if n_epochs == 1 else min(epoch / (n_epochs - 1), 1.0)
    if mode == "linear":
        return float(start + t * (end - start))
    return float(start * (end / start) ** t)
