"""Rows placed by a second view: one view counts, the other places.

The two views are good at different things. The frontal MIP shows ribs, transverse processes
and iliac crests side by side, and the frontal nets count vertebrae on real CT without a wrong
level; the sagittal MIP shows the vertebral bodies and discs edge-on, and the sagittal nets place
a vertebra two to three times more precisely (on phantoms) but have named the wrong vertebra on
real CT. The ``refined`` decision (``l3loc.runs.REFINED``) takes everything from the counting
view — status, confidence, reasons, and which vertebra each row is — and moves each row to the
placing view's peak of the same level within ``window_mm`` of it. The window is less than half
the distance between neighbouring vertebrae, so a row keeps its level; when the placing view's
highest point in the window lies on the window's edge (its own peak is farther away: it
disagrees about the vertebra, or sees nothing there) the counting row stays.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from l3loc.decode import Decision, _subpixel_peak, decode_profile

#: The view that places the rows of a ``refined`` decision (the frontal view counts).
PLACING_VIEW = "sagittal"
#: How far a row may move (mm). On a k-fold's held-out phantoms (1035 cases, the frontal fold
#: counting, the sagittal fold of the same split placing) the median error fell from 2.43 mm
#: unplaced to 2.01 / 1.13 / 0.89 / 0.85 mm with windows of 4 / 6 / 8 / 10 mm; what is left past
#: 10 mm is mostly rows 10-15 mm off. On the calibration phantoms (cal26, 518 positives, the
#: shipped model) windows of 10 / 12.5 / 15 / 20 mm put 484 / 489 / 492 / 490 rows within 10 mm
#: (found at a wrong level 12 / 9 / 7 / 9): 15 mm (benchmarks/placing_window_external.py). A
#: window is less than half the distance between neighbouring vertebral centres (25 mm or more)
#: past a row on its vertebra, and a peak on the window's edge moves nothing.
PLACING_WINDOW_MM = 15.0


def placed_row(row: float, profile: np.ndarray, spacing_mm: float, window_mm: float) -> float:
    """``row`` moved to the highest point of the decoded ``profile`` [H] within ``window_mm``
    (sub-pixel); ``row`` itself when it is not a finite row of the profile or that point lies on
    the window's edge."""
    if not math.isfinite(row) or not 0 <= row <= len(profile) - 1:
        return row
    half = window_mm / spacing_mm
    lo, hi = max(0, math.ceil(row - half)), min(len(profile) - 1, math.floor(row + half))
    if hi - lo < 2:
        return row
    peak = lo + int(np.argmax(profile[lo:hi + 1]))
    if peak in (lo, hi):
        return row
    return _subpixel_peak(np.asarray(profile, dtype=np.float64), peak)


def placed_decision(decision: Decision, placing_profiles: np.ndarray, levels: Sequence[str],
                    spacing_mm: float, smooth_mm: float, window_mm: float) -> Decision:
    """The counting view's ``decision`` with its rows placed by the placing view.

    Args:
        decision: the counting view's Decision (a ``LevelDecision`` for level channels: every
            level of its sequence is placed, and L3's row with it).
        placing_profiles: the placing view's raw row profiles [len(levels), H] (or [H] for a
            single L3 channel) on the same processed rows (the mean of its folds).
        levels: the channels' levels (("L3",) for a single-L3 model).
        spacing_mm, smooth_mm: the processed pixel size and the profile decoder's smoothing.
        window_mm: how far a row may move.
    """
    profiles = np.atleast_2d(np.asarray(placing_profiles, dtype=np.float32))
    decoded = [decode_profile(p, "profile", spacing_mm, smooth_mm).profile for p in profiles]
    l3 = decoded[list(levels).index("L3")]
    changes = {"row": placed_row(decision.row, l3, spacing_mm, window_mm)}
    seq = getattr(decision, "sequence", None)
    if seq is not None:
        rows = np.array([placed_row(float(r), decoded[list(levels).index(name)], spacing_mm,
                                    window_mm) for name, r in zip(seq.levels, seq.rows)])
        changes["sequence"] = dataclasses.replace(seq, rows=rows)
        if decision.row == seq.row("L3"):   # L3 from the sequence: the same row, placed
            changes["row"] = float(rows[list(seq.levels).index("L3")])
    return dataclasses.replace(decision, **changes)
