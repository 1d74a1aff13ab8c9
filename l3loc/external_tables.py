"""External evaluation's scoring rule and tables: the right level (inside the L3 body +-5 mm, or
within 10 mm without the body's extent), the per-level rows, one model's counts and
``summary.md``. :mod:`l3loc.external` runs the models and calls these.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from l3loc.levels import LEVELS
from l3loc.metrics import RIGHT_LEVEL_MM

#: A prediction inside the L3 body's extent widened by this much (mm) is at the right level.
BODY_MARGIN_MM = 5.0
#: Columns a model with level channels adds (the L3 channel's own decision), and per level
#: (other than L3) that the model locates or the labels give, in this order.
CHANNEL_COLUMNS = ("sequence_confidence", "l3_channel_status", "l3_channel_z_mm",
                   "l3_channel_error_mm", "l3_channel_right_level")
LEVEL_FIELDS = ("z_mm", "true_z_mm", "error_mm", "right_level")


def right_level(pred_z: float, true_z: float, top: float = math.nan, bottom: float = math.nan) -> bool:
    """The predicted z is at L3: inside the body +-BODY_MARGIN_MM, or within RIGHT_LEVEL_MM of
    the truth when the body's extent is not given."""
    if not (math.isfinite(pred_z) and math.isfinite(true_z)):
        return False
    if math.isfinite(top) and math.isfinite(bottom):
        return bottom - BODY_MARGIN_MM <= pred_z <= top + BODY_MARGIN_MM
    return abs(pred_z - true_z) <= RIGHT_LEVEL_MM


def level_fields(decision, geom, true_z: dict) -> dict:
    """Per-level columns of one case: for every level other than L3 that the decision's
    sequence locates or ``true_z`` gives (level -> true z mm, NaN = absent), the predicted z,
    the true z, the error and the right level (within ``RIGHT_LEVEL_MM``); for a decision with
    a sequence, its confidence and the L3 channel's status and z. Empty for a single-L3 model
    with L3-only labels."""
    seq = getattr(decision, "sequence", None)
    out = {}
    if seq is not None:
        ch = decision.channel
        out.update(sequence_confidence=seq.sequence_confidence, l3_channel_status=ch.status,
                   l3_channel_z_mm=float(geom.z_mm(ch.row)))
    for k in LEVELS:
        if k == "L3" or not ((seq is not None and k in seq.levels) or k in true_z):
            continue
        row = seq.row(k) if seq is not None else math.nan
        pred = float(geom.z_mm(row)) if math.isfinite(row) else math.nan
        true = float(true_z.get(k, math.nan))
        err = abs(pred - true) if math.isfinite(pred) and math.isfinite(true) else math.nan
        out.update({f"{k.lower()}_z_mm": pred, f"{k.lower()}_true_z_mm": true,
                    f"{k.lower()}_error_mm": err,
                    f"{k.lower()}_right_level": bool(err <= RIGHT_LEVEL_MM)})
    return out


def level_columns(rows: Sequence[dict]) -> list[str]:
    """The per-level columns some row has, in ``CHANNEL_COLUMNS`` then ``LEVELS`` order."""
    have = set().union(*(r.keys() for r in rows)) if rows else set()
    wanted = [*CHANNEL_COLUMNS, *(f"{k.lower()}_{f}" for k in LEVELS if k != "L3"
                                  for f in LEVEL_FIELDS)]
    return [c for c in wanted if c in have]


def level_cases(per_case: pd.DataFrame) -> pd.DataFrame:
    """``per_case.csv``'s per-level columns as one row per case and level
    (``l3loc.metrics.LEVEL_CASE_COLUMNS`` after ``view``, ``folds``, ``name``): L3 as the model
    decided it (``sequence`` for a model with level channels), the L3 channel's own decision
    beside it, and every other level with a predicted-z column."""
    located_statuses = ("found", "ambiguous")
    others = [k for k in LEVELS if k != "L3" and f"{k.lower()}_z_mm" in per_case]
    rows = []
    for _, r in per_case.iterrows():
        key = {"view": r["view"], "folds": r["folds"], "name": r["name"]}
        positive = not bool(r["negative"])
        multi = isinstance(r.get("l3_channel_status"), str) and r["l3_channel_status"] != ""
        rows.append({**key, "level": "L3", "decoder": "sequence" if multi else "L3 channel",
                     "present": positive and math.isfinite(r["true_z_mm"]),
                     "located": r["status"] in located_statuses, "status": r["status"],
                     "true_row": r["true_z_mm"], "pred_row": r["pred_z_mm"],
                     "confidence": r["confidence"], "error_mm": r["error_mm"],
                     "right_level": bool(r["right_level"]), "reason": r["message"]})
        if multi:
            rows.append({**rows[-1], "decoder": "L3 channel", "status": r["l3_channel_status"],
                         "located": r["l3_channel_status"] in located_statuses,
                         "pred_row": r["l3_channel_z_mm"], "error_mm": r["l3_channel_error_mm"],
                         "right_level": bool(r["l3_channel_right_level"]), "reason": ""})
        for k in others:
            c = k.lower()
            rows.append({**key, "level": k, "decoder": "sequence", "status": r["status"],
                         "present": math.isfinite(r[f"{c}_true_z_mm"]),
                         "located": math.isfinite(r[f"{c}_z_mm"]), "true_row": r[f"{c}_true_z_mm"],
                         "pred_row": r[f"{c}_z_mm"], "confidence": math.nan,
                         "error_mm": r[f"{c}_error_mm"], "right_level": bool(r[f"{c}_right_level"]),
                         "reason": r["message"]})
    return pd.DataFrame(rows)


def summarize_external(cases: pd.DataFrame) -> dict:
    """Counts and errors of one model's cases (``per_case.csv`` rows)."""
    pos = cases[~cases["negative"].astype(bool)]
    neg = cases[cases["negative"].astype(bool)]
    err = pos["error_mm"].to_numpy(dtype=float)
    err = err[np.isfinite(err)]
    found = pos["status"] == "found"
    return {
        "n_positive": len(pos), "n_negative": len(neg),
        "right_level_found": int((found & pos["right_level"].astype(bool)).sum()),
        "wrong_level_found": int((found & ~pos["right_level"].astype(bool)).sum()),
        "ambiguous": int((pos["status"] == "ambiguous").sum()),
        "not_found_on_positive": int((pos["status"] == "not_found").sum()),
        "errors": int((cases["status"] == "error").sum()),
        "negatives_right": int((neg["status"] == "not_found").sum()),
        "best_row_right_level": int(pos["right_level"].astype(bool).sum()),
        "median_mm": float(np.median(err)) if err.size else math.nan,
        "mean_mm": float(err.mean()) if err.size else math.nan,
    }


def summary_markdown(summary: pd.DataFrame, title: str, data: Path) -> str:
    def f(x, d=1):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"

    lines = [f"# {title}", "", f"External evaluation on `{data}` (every case a test case).", "",
             "| view | folds | right level found | wrong-level found | ambiguous | not_found (+) "
             "| negatives right | best row at L3 | median mm | mean mm | threshold | optimistic: "
             "threshold, right level, wrong-level, negatives right |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        # the opt_ counts are missing on per-fold rows, so pandas holds them as floats
        opt = (f"{f(r['opt_threshold'], 3)}, {int(r['opt_right_level_found'])}/{r['n_positive']}, "
               f"{int(r['opt_wrong_level_found'])}, {int(r['opt_negatives_right'])}/{r['n_negative']}"
               if math.isfinite(r.get("opt_threshold", math.nan)) else "–")
        lines.append(
            f"| {r['view']} | {r['folds']} | {r['right_level_found']}/{r['n_positive']} "
            f"| {r['wrong_level_found']} | {r['ambiguous']} | {r['not_found_on_positive']} "
            f"| {r['negatives_right']}/{r['n_negative']} "
            f"| {r['best_row_right_level']}/{r['n_positive']} | {f(r['median_mm'])} "
            f"| {f(r['mean_mm'])} | {f(r['threshold'], 3)} | {opt} |")
    lines += ["", f"Right level: the predicted z inside the L3 body ±{BODY_MARGIN_MM:g} mm when the "
              f"labels give its extent, else an error ≤ {RIGHT_LEVEL_MM:g} mm. Wrong-level found: a "
              "positive case called `found` at another level (the worst outcome). Best row at L3: "
              "the best row is at the right level whatever the status. Errors over every positive "
              "case, whatever its status. threshold: the run's (what prediction uses). "
              "**Optimistic**: the threshold that best separates this dataset's own positives and "
              "negatives, chosen on the cases it is scored on (ensembles only); not a fair figure."]
    source = summary.get("threshold_source", pd.Series("", index=summary.index)).astype(str)
    unevaluated = summary[source.str.startswith("config")]
    if len(unevaluated):
        # (an evaluation of some folds only writes to a folder of its own and sets no threshold)
        lines += ["", f"**Warning**: no k-fold evaluation of the whole run (`eval/decision.json`): "
                  f"{', '.join(sorted(set(unevaluated['view'])))} scored with the config's "
                  "`eval.threshold`, not a threshold chosen on held-out phantoms."]
    return "\n".join(lines) + "\n"
