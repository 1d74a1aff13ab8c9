"""The ``not_found`` threshold of an ensemble, chosen on its own confidences on fresh labelled data.

A k-fold evaluation chooses the threshold on each fold's held-out cases, scored by that fold
alone, and prediction applies it to the fold ensemble, whose peak confidence is the mean of the
folds' maps (lower where they disagree): on generation 26 the run's threshold was the single most
confident negative phantom of one fold (0.222), while the ensemble's own best on a fresh set was
0.241. A pooled ensemble (``l3loc ensemble``) has no k-fold at all. Calibration runs the ensemble
exactly as prediction does (``l3loc.external.evaluate_external``) on a labelled dataset none of
its nets was trained or selected on, with positive and negative cases, and chooses the threshold
by the rule every run uses (``l3loc.metrics.choose_threshold``: balanced accuracy of positives at
or above it and negatives below it, ties to the lowest).

    l3loc calibrate --experiment work/both26 --data work/data/cal26/l3_dataset.npz

Writes the threshold of every view evaluated into the run's ``eval/decision.json`` (what
prediction and ``l3loc export`` read), with the method, the dataset and its counts, and the
threshold it replaces; the evaluation itself goes to ``<experiment>/calibration_<dataset name>/``.
A later k-fold ``l3loc eval`` of the run refuses to replace calibrated thresholds without
``--overwrite``.
Never calibrate on the data a model is judged on (the real validation set): the threshold would
be chosen on the very cases it is scored on.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from l3loc.config import load_config
from l3loc.errors import InputError
from l3loc.external import dataset_name, evaluate_external
from l3loc.runs import (DECISION, default_view, read_decision, trained_folds, weight_hashes,
                        write_decision)


def calibrate(exp_dir: str | Path, data: str | Path, overwrite: bool = False,
              device: str = "cpu", progress: bool = False) -> dict:
    """Choose and record the threshold of every trained view (and fused) of ``exp_dir`` on
    ``data``; returns the decision written.

    Raises:
        InputError: a view already has a threshold and ``overwrite`` is off; ``data`` lacks
            positive or negative cases (nothing to separate); bad data or run (as evaluation).
    """
    exp_dir = Path(exp_dir)
    trained = trained_folds(exp_dir)
    if not trained:
        raise InputError(exp_dir, "holds no trained fold: calibrate the run folder, then export it")
    decision = read_decision(exp_dir) or {}
    views = dict(decision.get("views") or {})
    if views and not overwrite:
        raise InputError(exp_dir / "eval" / DECISION,
                         f"already holds thresholds ({_thresholds_text(views)}); pass --overwrite "
                         "to replace them with calibrated ones")
    out_dir = exp_dir / f"calibration_{dataset_name(data)}"
    summary = evaluate_external(exp_dir, data, out_dir=out_dir, plots=False, overwrite=overwrite,
                                device=device, progress=progress)
    cases = pd.read_csv(out_dir / "per_case.csv")
    for _, row in summary[summary["folds"] == "ensemble"].iterrows():
        view = row["view"]
        rows = cases[(cases["view"] == view) & (cases["folds"] == "ensemble")
                     & (cases["status"] != "error")]
        negatives = int(rows["negative"].sum())
        positives = len(rows) - negatives
        if not math.isfinite(row["opt_threshold"]):
            raise InputError(data, f"has {positives} positive and {negatives} negative cases "
                                   "that scored: a threshold needs both")
        previous = views.get(view, {}).get("threshold")
        views[view] = {
            "threshold": float(row["opt_threshold"]),
            "threshold_method": (f"calibrated on the ensemble's own confidences on "
                                 f"{dataset_name(data)} ({positives} positives, {negatives} "
                                 "negatives; balanced accuracy)"),
            "calibration": {"data": str(data), "positives": positives, "negatives": negatives,
                            "replaced_threshold": previous}}
    first_fold = trained[0][2]
    decoder = decision.get("decoder") or load_config(first_fold / "config.yaml")["eval"]["decoder"]
    best = decision.get("best_view") or default_view(exp_dir)
    (exp_dir / "eval").mkdir(exist_ok=True)
    write_decision(exp_dir / "eval", views, best, decoder, weight_hashes(exp_dir))
    return read_decision(exp_dir)


def _thresholds_text(views: dict) -> str:
    return ", ".join(f"{v} {e['threshold']:.3f}" for v, e in views.items()
                     if isinstance(e.get("threshold"), (int, float)))
