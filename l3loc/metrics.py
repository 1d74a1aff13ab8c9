"""Errors of L3 predictions: one record per case, summaries per fold and view, the abstention
threshold.

Every error figure is over every positive case (whatever its status: an abstention is counted in
the status columns, never dropped from the errors), so the numbers compare with published ones.
Errors are measured on the processed row grid (``error_mm = |pred_row - true_row| * spacing_mm``,
which is the z distance along the scan) and in the scan's own slices through ``CaseGeometry``.
Standard deviations are population ones (``ddof=0``, numpy's default, as the reference's).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from l3loc.decode import STATUSES, Decision
from l3loc.case_geometry import CaseGeometry

#: Columns of ``per_case.csv``, in order.
CASE_COLUMNS = ("view", "fold", "name", "negative", "status", "true_row", "pred_row", "confidence",
                "second_row", "second_confidence", "true_slice", "pred_slice", "true_z_mm",
                "pred_z_mm", "signed_error_mm", "error_mm", "error_slices")

#: Without a vertebral body's extent, a predicted level within this (mm) of the truth is at the
#: right level (about a third of a vertebra plus disc).
RIGHT_LEVEL_MM = 10.0

#: Columns of one level of one case (``per_level_case.csv``), after the grouping keys.
LEVEL_CASE_COLUMNS = ("level", "decoder", "present", "located", "status", "true_row", "pred_row",
                      "confidence", "error_mm", "right_level", "reason")
#: Columns of a per-level summary row (``per_level.csv``) after the grouping keys.
LEVEL_SUMMARY_COLUMNS = ("n_cases", "n_present", "located", "missed", "extra", "median_mm",
                         "mean_mm", "p90_mm", "max_mm", "right_level", "right_level_pct",
                         "wrong_level_found", "ambiguous")

#: Columns of a summary row (``per_fold.csv``, ``summary.csv``) after the grouping keys.
SUMMARY_COLUMNS = ("n_cases", "n_positive", "n_negative", "mean_mm", "std_mm", "median_mm",
                   "p90_mm", "max_mm", "bias_mm", "mean_slices", "std_slices", "median_slices",
                   "within_5mm_pct", "within_10mm_pct", "found", "not_found", "ambiguous",
                   "negative_right", "negative_accuracy_pct", "positive_right",
                   "positive_detected_pct")


def case_record(view: str, fold: int, name: str, label_row: float, decision: Decision,
                geometry: CaseGeometry, spacing_mm: float) -> dict:
    """One row of ``per_case.csv``.

    Args:
        view: "frontal", "sagittal" or "fused".
        fold: 1-based fold whose model made the prediction.
        name: case name.
        label_row: true L3 processed row, NaN for a negative case.
        decision: ``l3loc.decode.classify`` of the case's profile.
        geometry: the case's ``CaseGeometry`` (processed row -> file slice, z).
        spacing_mm: processed row spacing (mm).

    Returns:
        dict with the keys of ``CASE_COLUMNS``; error fields are NaN for a negative case.
        ``signed_error_mm`` > 0 means the prediction is inferior to the truth (a larger row).
    """
    positive = math.isfinite(label_row)
    pred = decision.row
    nan = math.nan
    return {
        "view": view, "fold": int(fold), "name": name, "negative": not positive,
        "status": decision.status, "true_row": label_row if positive else nan, "pred_row": pred,
        "confidence": decision.confidence, "second_row": decision.second_row,
        "second_confidence": decision.second_confidence,
        "true_slice": float(geometry.file_index(label_row)) if positive else nan,
        "pred_slice": float(geometry.file_index(pred)),
        "true_z_mm": float(geometry.z_mm(label_row)) if positive else nan,
        "pred_z_mm": float(geometry.z_mm(pred)),
        "signed_error_mm": (pred - label_row) * spacing_mm if positive else nan,
        "error_mm": abs(pred - label_row) * spacing_mm if positive else nan,
        "error_slices": (abs(float(geometry.file_index(pred)) - float(geometry.file_index(label_row)))
                         if positive else nan),
    }


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else math.nan


def summarize_cases(cases: pd.DataFrame) -> dict:
    """Summary of a set of ``per_case`` rows (one view, one fold or all folds).

    Returns:
        dict with the keys of ``SUMMARY_COLUMNS``: error statistics in mm and in slices over the
        positive cases (NaN when there is none), percentages of positives within 5 and 10 mm,
        counts per status, negatives called ``not_found`` (count and %), positives not called
        ``not_found`` (count and %).
    """
    neg = cases["negative"].to_numpy(dtype=bool)
    status = cases["status"].to_numpy()
    err = cases.loc[~neg, "error_mm"].to_numpy(dtype=np.float64)
    err_sl = cases.loc[~neg, "error_slices"].to_numpy(dtype=np.float64)
    signed = cases.loc[~neg, "signed_error_mm"].to_numpy(dtype=np.float64)
    n_pos, n_neg = int((~neg).sum()), int(neg.sum())

    def stat(fn, a):
        return float(fn(a)) if a.size else math.nan

    neg_right = int((status[neg] == "not_found").sum())
    pos_right = int((status[~neg] != "not_found").sum())
    out = {
        "n_cases": len(cases), "n_positive": n_pos, "n_negative": n_neg,
        "mean_mm": stat(np.mean, err), "std_mm": stat(np.std, err),
        "median_mm": stat(np.median, err), "p90_mm": stat(lambda a: np.percentile(a, 90), err),
        "max_mm": stat(np.max, err), "bias_mm": stat(np.mean, signed),
        "mean_slices": stat(np.mean, err_sl), "std_slices": stat(np.std, err_sl),
        "median_slices": stat(np.median, err_sl),
        "within_5mm_pct": _pct(int((err <= 5.0).sum()), n_pos),
        "within_10mm_pct": _pct(int((err <= 10.0).sum()), n_pos),
    }
    out.update({s: int((status == s).sum()) for s in STATUSES})
    out.update({"negative_right": neg_right, "negative_accuracy_pct": _pct(neg_right, n_neg),
                "positive_right": pos_right, "positive_detected_pct": _pct(pos_right, n_pos)})
    return out


def summarize(per_case: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """``summarize_cases`` for each group of ``per_case`` rows.

    Args:
        per_case: rows with the ``CASE_COLUMNS``.
        by: grouping columns, e.g. ``["view"]`` or ``["view", "fold"]``; groups keep the order
            of first appearance.

    Returns:
        One row per group: the ``by`` columns, then ``SUMMARY_COLUMNS``.
    """
    rows = []
    for keys, group in per_case.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        rows.append({**dict(zip(by, keys)), **summarize_cases(group)})
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def choose_threshold(confidence: Sequence[float], negative: Sequence[bool],
                     fallback: float) -> tuple[float, bool]:
    """Peak-confidence threshold that best separates positive from negative cases.

    Maximises the balanced accuracy (mean of the share of negatives below the threshold and the
    share of positives at or above it) over the midpoints between consecutive distinct
    confidences; among equal scores the lowest threshold wins (fewest positives rejected).

    Args:
        confidence: peak confidence per case.
        negative: True for a case without L3.
        fallback: returned when the cases do not contain both kinds (nothing to separate).

    Returns:
        (threshold, chosen): ``chosen`` is False when ``fallback`` was returned.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    neg = np.asarray(negative, dtype=bool)
    if conf.shape != neg.shape:
        raise ValueError(f"confidence and negative differ in shape: {conf.shape} vs {neg.shape}")
    if not neg.any() or neg.all():
        return float(fallback), False
    values = np.unique(conf)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2.0,
                                 [values[-1] + 1e-6]])
    # [candidates, cases]: rejected = below the threshold
    rejected = conf[None, :] < candidates[:, None]
    score = 0.5 * (rejected[:, neg].mean(axis=1) + (~rejected[:, ~neg]).mean(axis=1))
    return float(candidates[int(np.argmax(score))]), True


def summarize_levels(cases: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per-level summary of level rows (``LEVEL_CASE_COLUMNS``: one level of one case each).

    A level is *present* when the truth has it and *located* when the decoder placed it (for a
    decision with a status, not ``not_found``). Errors are over the present levels with a
    predicted row; ``right_level`` counts present levels located at the right level (the
    rows' ``right_level``), its percentage is over every present level (a missed level is not
    right); ``missed``: present, not located; ``extra``: located although the truth lacks it;
    ``wrong_level_found``: present, located at a wrong level with status ``found`` (the
    confident wrong answer); ``ambiguous``: present, in a case whose decision is ``ambiguous``.

    Args:
        cases: level rows; groups keep the order of first appearance.
        by: grouping columns, e.g. ``["view", "level", "decoder"]``.

    Returns:
        One row per group: the ``by`` columns, then ``LEVEL_SUMMARY_COLUMNS``.
    """
    rows = []
    for keys, g in cases.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        present = g["present"].to_numpy(dtype=bool)
        located = g["located"].to_numpy(dtype=bool)
        right = g["right_level"].to_numpy(dtype=bool) & present & located
        err = g.loc[present, "error_mm"].to_numpy(dtype=np.float64)
        err = err[np.isfinite(err)]
        status = g["status"].to_numpy()

        def stat(fn):
            return float(fn(err)) if err.size else math.nan

        rows.append({**dict(zip(by, keys)), "n_cases": len(g), "n_present": int(present.sum()),
                     "located": int((present & located).sum()),
                     "missed": int((present & ~located).sum()),
                     "extra": int((~present & located).sum()),
                     "median_mm": stat(np.median), "mean_mm": stat(np.mean),
                     "p90_mm": stat(lambda a: np.percentile(a, 90)), "max_mm": stat(np.max),
                     "right_level": int(right.sum()),
                     "right_level_pct": _pct(int(right.sum()), int(present.sum())),
                     "wrong_level_found": int((present & located & ~right
                                               & (status == "found")).sum()),
                     "ambiguous": int((present & (status == "ambiguous")).sum())})
    return pd.DataFrame(rows, columns=[*by, *LEVEL_SUMMARY_COLUMNS])


def levels_markdown(summary: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """The per-level summary as Markdown lines (a table, then how to read it)."""
    def f(x, d=2):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"

    lines = ["| " + " | ".join(by) + " | present | located (missed / extra) | median mm | mean mm "
             "| p90 mm | max mm | right level | wrong-level found | ambiguous |",
             "|" + "---|" * (len(by) + 9)]
    for _, r in summary.iterrows():
        lines.append("| " + " | ".join(str(r[b]) for b in by)
                     + f" | {r['n_present']}/{r['n_cases']} | {r['located']} ({r['missed']} / "
                     f"{r['extra']}) | {f(r['median_mm'])} | {f(r['mean_mm'])} | {f(r['p90_mm'])} "
                     f"| {f(r['max_mm'])} | {r['right_level']} ({f(r['right_level_pct'], 1)} %) "
                     f"| {r['wrong_level_found']} | {r['ambiguous']} |")
    lines += ["", "Per level: errors over the present levels the decoder placed; right level = "
              "placed within the level's tolerance (the body's extent when known, else "
              f"{RIGHT_LEVEL_MM:g} mm), % of the present ones; missed = present, not placed; "
              "extra = placed, absent from the truth; wrong-level found = placed at a wrong "
              "level while the case is `found`; ambiguous = present in a case called `ambiguous`. "
              "`sequence` = the anatomical sequence decoder (what prediction reports); "
              "`L3 channel` = the single L3 channel's own decision on the same cases."]
    return lines
