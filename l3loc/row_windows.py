"""Row windows: the training window of canvas rows around (or away from) the label, and the
whole-height padding inference uses. Rows are never cropped by preprocessing; these cut them.
"""
from __future__ import annotations

import math

import numpy as np


def sample_row_window(
    height_px: int,
    label_row: float | None,
    canvas_rows: int,
    rng: np.random.Generator,
    p_positive: float = 0.5,
) -> int:
    """First row of a training window of ``canvas_rows`` rows (the paper's sampling).

    With probability ``p_positive`` (and a finite ``label_row``) the window contains the label
    row; otherwise any window is drawn uniformly (its target may then be empty). An image shorter
    than the window gets a start in ``[height - canvas_rows, 0]`` (padding above or below).

    Args:
        height_px: rows of the processed image.
        label_row: processed L3 row, or None/NaN for a negative case.
        canvas_rows: rows of the window.
        rng: numpy Generator (the caller owns the seed).
        p_positive: probability of a window that contains the label.

    Returns:
        Start row (may be negative for short images); use ``row_window`` to cut it.
    """
    lo, hi = min(0, height_px - canvas_rows), max(0, height_px - canvas_rows)
    positive = label_row is not None and math.isfinite(label_row) and rng.random() < p_positive
    if positive:
        # the window [s, s + canvas_rows) holds the label row's pixel when s <= row < s + canvas_rows
        row = int(math.floor(label_row))
        lo, hi = max(lo, row - canvas_rows + 1), min(hi, row)
        if lo > hi:  # label outside the image (e.g. shifted by augmentation): any window
            lo, hi = min(0, height_px - canvas_rows), max(0, height_px - canvas_rows)
    return int(rng.integers(lo, hi + 1))


def row_window(image: np.ndarray, start_row: int, n_rows: int, fill: float = 0.0) -> np.ndarray:
    """Rows ``[start_row, start_row + n_rows)`` of ``image``; rows outside it are ``fill``.

    Args:
        image: [rows, cols].
        start_row: first row (may be negative).
        n_rows: window height.

    Returns:
        [n_rows, cols] copy; window row ``i`` is image row ``start_row + i``.
    """
    out = np.full((n_rows, image.shape[1]), fill, dtype=image.dtype)
    lo, hi = max(start_row, 0), min(start_row + n_rows, image.shape[0])
    if hi > lo:
        out[lo - start_row:hi - start_row] = image[lo:hi]
    return out


def pad_rows_to_multiple(image: np.ndarray, stride: int, fill: float = 0.0) -> np.ndarray:
    """Pad rows at the bottom to a multiple of the network stride, for whole-height inference.

    Padding at the bottom keeps every row index unchanged, so ``CaseGeometry`` applies as is;
    crop the network output back to ``image.shape[0]`` rows.

    Args:
        image: [rows, cols].
        stride: the network's total down-sampling factor.

    Returns:
        [ceil(rows / stride) * stride, cols].
    """
    rows = image.shape[0]
    target = -(-rows // stride) * stride
    if target == rows:
        return image
    return row_window(image, 0, target, fill)
