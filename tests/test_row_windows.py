"""Tests for l3loc.row_windows: training windows around the label and whole-height padding."""
from __future__ import annotations

import numpy as np

from l3loc.row_windows import pad_rows_to_multiple, row_window, sample_row_window


def test_sample_row_window_contains_label_when_positive():
    rng = np.random.default_rng(0)
    starts = [sample_row_window(1500, 1200.7, 512, rng, p_positive=1.0) for _ in range(200)]
    assert all(s <= 1200 < s + 512 for s in starts)
    assert min(starts) >= 0 and max(starts) <= 1500 - 512
    anywhere = [sample_row_window(1500, 1200.7, 512, rng, p_positive=0.0) for _ in range(200)]
    assert min(anywhere) < 1200 - 511  # some windows miss the label
    short = [sample_row_window(300, float("nan"), 512, rng) for _ in range(100)]
    assert all(-212 <= s <= 0 for s in short)


def test_row_window_and_stride_padding_keep_rows():
    img = np.arange(5, dtype=np.float32)[:, None] + 1
    assert row_window(img, -2, 4)[:, 0].tolist() == [0, 0, 1, 2]
    assert row_window(img, 3, 4)[:, 0].tolist() == [4, 5, 0, 0]
    padded = pad_rows_to_multiple(img, 4)
    assert padded[:, 0].tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert pad_rows_to_multiple(padded, 4) is padded
