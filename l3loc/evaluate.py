"""Evaluate an experiment: every trained fold of every view on its own held-out cases, plus the
two views fused and the frontal decision with its rows placed by the sagittal net (``refined``,
:mod:`l3loc.placement`); per-case and per-fold CSVs, a summary table and plots (the last two drawn by
:mod:`l3loc.eval_report`).

Reads (layout of ``l3loc.engine``): ``<exp>/splits.json`` and
``<exp>/<view>/fold_<K>/{best.pdparams, config.yaml, train_log.csv}``.
Writes ``<out>/`` (default ``<exp>/eval/``): ``per_case.csv``, ``per_fold.csv``,
``summary.csv``, ``summary.md``, ``cumulative_error.png``, ``per_fold.png``,
``training_curves.png``, ``worst_cases.png``, and ``profiles/<view>_fold<K>.npz`` (the raw row
profiles of the held-out cases, reused while the checkpoint and the data cache are unchanged, so
trying another decoder or threshold needs no network).

A model with one channel per level (``label.levels``) keeps every channel's profile; the tables
above are then its L3 channel decoded alone, and ``per_level_case.csv`` / ``per_level.csv`` and a
per-level table in ``summary.md`` add every level as the anatomical sequence decoder places it
(``l3loc.levels.level_decision``, what prediction reports), with the L3 channel's own decision
beside the sequence's L3 on the same cases (:func:`decide_levels_view`).

Isolation: fold K's cases are exactly ``splits[K-1]`` and are run through fold K's model only.

The held-out profiles and the model seam (``model_loader``) are :mod:`l3loc.fold_profiles`.

Thresholds: per view, the ``not_found`` threshold on the peak confidence of the run (what
prediction uses) is chosen on the pooled held-out predictions of all evaluated folds
(``l3loc.metrics.choose_threshold``; a peak at the scan's end, never ``found``, counts as
below any threshold: ``l3loc.decode.scan_end``), unless one is given; with no negative case there is
nothing to choose from and ``eval.threshold`` of the config is used. The figures of the table
are cross-fitted: fold K's cases are scored with the threshold chosen on the other folds, so no
case helps choose the threshold it is scored with (see :func:`decide_view`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from l3loc.atomic import write_table, write_text
from l3loc.decode import DECODERS, Decision, classify, decode_profile, scan_end
from l3loc.errors import InputError
from l3loc.eval_report import (plot_cumulative, plot_per_fold, plot_training_curves, plot_worst_cases,
                               summary_markdown)
from l3loc.fold_profiles import FoldProfiles, ModelLoader, fold_profiles, fuse_folds
from l3loc.levels import level_decision
from l3loc.metrics import (CASE_COLUMNS, LEVEL_CASE_COLUMNS, RIGHT_LEVEL_MM, case_record, choose_threshold,
                           levels_markdown, summarize, summarize_levels)
from l3loc.placement import PLACING_VIEW, PLACING_WINDOW_MM, placed_decision
from l3loc.runs import (DECISION, DECISION_VIEWS, FUSED, NET_VIEWS, REFINED, epochs_done, read_decision,
                        read_splits, trained_folds, weight_hashes, write_decision)

log = logging.getLogger("l3loc")

#: The views evaluation reports: each net's, and the two fused (l3loc.runs.DECISION_VIEWS).
EVAL_VIEWS = DECISION_VIEWS

# ----------------------------------------------------------------------------- decisions


def _placed(decision: Decision, placing: FoldProfiles, k: int, smooth_mm: float,
            l3_channel: bool) -> Decision:
    """``decision`` (of case ``k`` of a fold) with its rows placed by the placing view's fold
    (``l3loc.placement``): by its L3 channel alone, or by every level channel."""
    profiles = placing.profiles[k] if l3_channel else placing.level_profiles[k]
    return placed_decision(decision, profiles, ("L3",) if l3_channel else placing.levels,
                           placing.spacing_mm, smooth_mm, PLACING_WINDOW_MM)


def decide_view(results: Sequence[FoldProfiles], decoder: str, threshold: float | None,
                smooth_mm: float = 2.0, ambiguity_ratio: float = 0.8,
                min_separation_mm: float = 20.0,
                placing: Sequence[FoldProfiles] | None = None) -> tuple[pd.DataFrame, dict]:
    """Decode and classify every case of one view's folds.

    The ``not_found`` threshold a case is scored with never comes from that case's own fold
    when it can be helped (cross-fitting): fold K's cases are classified with the threshold
    chosen on the other folds' held-out cases. The run's threshold (what prediction uses) is
    chosen on all folds pooled. With a single fold there is nothing to cross-fit: its cases are
    scored with the threshold chosen on themselves, and ``threshold_method`` says so.

    Args:
        results: the view's ``FoldProfiles``, one per fold.
        decoder: ``argmax`` or ``profile``.
        threshold: the ``not_found`` threshold for every case; None = chosen as above
            (``choose_threshold``; the config's ``eval.threshold`` without negative cases).
        smooth_mm, ambiguity_ratio, min_separation_mm: as ``decode_profile`` / ``classify``.
        placing: the ``refined`` view: the placing view's folds (same cases, in the order of
            ``results``), which move each decision's row (``l3loc.placement``).

    Returns:
        (per-case rows with ``CASE_COLUMNS`` plus ``threshold`` (the one the case was scored
        with), {"threshold" (the run's), "threshold_chosen", "threshold_method"}).
    """
    decoded = [[decode_profile(p, decoder, r.spacing_mm, smooth_mm) for p in r.profiles]
               for r in results]
    fallback = float(results[0].cfg["eval"]["threshold"])

    def chosen_on(folds: Sequence[int]) -> tuple[float, bool]:
        # a peak at the scan's end is never found, whatever the threshold (decode.scan_end)
        conf = [0.0 if scan_end(d.row, len(d.profile), results[i].spacing_mm) else d.confidence
                for i in folds for d in decoded[i]]
        negative = [not math.isfinite(x) for i in folds for x in results[i].label_rows]
        return choose_threshold(conf, negative, fallback)

    everything = range(len(results))
    if threshold is not None:
        run_threshold, chosen, method = float(threshold), False, "given"
        per_fold = [run_threshold] * len(results)
    else:
        run_threshold, chosen = chosen_on(everything)
        if len(results) > 1:
            per_fold = [chosen_on([j for j in everything if j != i])[0] for i in everything]
            method = "cross-fitted (each fold scored with the threshold of the other folds)"
        else:
            per_fold = [run_threshold]
            method = ("chosen on the scored fold itself (one fold: nothing to cross-fit; "
                      "optimistic)" if chosen else "config eval.threshold (no negative cases)")
    rows = []
    for i, (r, ds, thr) in enumerate(zip(results, decoded, per_fold)):
        for k, (name, label, geom, d) in enumerate(zip(r.names, r.label_rows, r.geometries, ds)):
            decision = classify(d.profile, r.spacing_mm, thr, ambiguity_ratio,
                                min_separation_mm, subpixel=decoder == "profile")
            if placing is not None:
                decision = _placed(decision, placing[i], k, smooth_mm, l3_channel=True)
            rows.append({**case_record(r.view, r.fold, name, float(label), decision, geom,
                                       r.spacing_mm), "threshold": thr})
    return pd.DataFrame(rows, columns=[*CASE_COLUMNS, "threshold"]), {
        "threshold": run_threshold, "threshold_chosen": chosen, "threshold_method": method}


def decide_levels_view(results: Sequence[FoldProfiles], per_case: pd.DataFrame,
                       smooth_mm: float = 2.0,
                       placing: Sequence[FoldProfiles] | None = None) -> pd.DataFrame:
    """Every level of every case of one view's folds of a model with level channels: the
    sequence decoder's decision (``l3loc.levels.level_decision``, what prediction does) and,
    for comparison on the same cases, the single L3 channel's (``decoder`` = ``L3 channel``:
    ``per_case``'s decision).

    Args:
        results: the view's ``FoldProfiles`` (with ``level_profiles``).
        per_case: ``decide_view``'s rows of these folds (the L3 channel's decision and the
            threshold each case is scored with).
        smooth_mm: as ``decode_levels``.
        placing: as ``decide_view`` (``per_case`` then holds the counting view's own rows, which
            the sequence is checked against as prediction checks it, before placing).

    Returns:
        Rows with ``view``, ``fold``, ``name`` and ``l3loc.metrics.LEVEL_CASE_COLUMNS``; right
        level = within ``RIGHT_LEVEL_MM``.
    """
    cases = per_case.set_index(["fold", "name"])
    rows = []

    def row(r, name, level, decoder, true, pred, conf, located, status, reason):
        present = math.isfinite(true)
        err = abs(pred - true) * r.spacing_mm if present and math.isfinite(pred) else math.nan
        return {"view": r.view, "fold": r.fold, "name": name, "level": level,
                "decoder": decoder, "present": present, "located": located, "status": status,
                "true_row": true, "pred_row": pred, "confidence": conf, "error_mm": err,
                "right_level": bool(located and err <= RIGHT_LEVEL_MM), "reason": reason}

    for i, r in enumerate(results):
        for k, name in enumerate(r.names):
            c = cases.loc[(r.fold, name)]
            channel = Decision(c["status"], float(c["pred_row"]), float(c["confidence"]),
                               float(c["second_row"]), float(c["second_confidence"]))
            d = level_decision(r.level_profiles[k], r.levels, channel, r.spacing_mm, smooth_mm,
                               float(c["threshold"]), view_profiles=(
                                   r.view_level_profiles[k] if r.view_level_profiles else None))
            if placing is not None:
                d = _placed(d, placing[i], k, smooth_mm, l3_channel=False)
                channel = _placed(channel, placing[i], k, smooth_mm, l3_channel=True)
            seq = d.sequence
            for j, level in enumerate(r.levels):
                pred, conf, located = float(seq.rows[j]), float(seq.confidence[j]), None
                if level == "L3":   # what prediction reports: the decision's row and status
                    pred, conf, located = d.row, d.confidence, d.status != "not_found"
                rows.append(row(r, name, level, "sequence", float(r.level_label_rows[k, j]), pred,
                                conf, math.isfinite(pred) if located is None else located,
                                d.status, d.reason))
            rows.append(row(r, name, "L3", "L3 channel", float(r.label_rows[k]), channel.row,
                            channel.confidence, channel.status != "not_found", channel.status, ""))
    return pd.DataFrame(rows, columns=["view", "fold", "name", *LEVEL_CASE_COLUMNS])


# ----------------------------------------------------------------------------- the whole run


def evaluate_experiment(exp_dir: str | Path, views: Sequence[str] | None = None,
                        folds: Sequence[int] | None = None, decoder: str | None = None,
                        threshold: float | None = None, out_dir: str | Path | None = None,
                        model_loader: ModelLoader | None = None, plots: bool = True,
                        smooth_mm: float | None = None, ambiguity_ratio: float | None = None,
                        min_separation_mm: float | None = None, progress: bool = False,
                        overwrite: bool = False) -> pd.DataFrame:
    """Evaluate the trained folds of an experiment and write the result files.

    Args:
        exp_dir: ``work/<experiment>``.
        views: among ``EVAL_VIEWS``; None = every view with trained folds, plus ``fused`` when
            both nets exist for a fold.
        folds: 1-based folds; None = every trained fold.
        decoder: ``argmax`` or ``profile``; None = the folds' ``eval.decoder``.
        threshold: ``not_found`` threshold for every view; None = chosen per view (module doc).
        out_dir: output folder; None = ``<exp_dir>/eval``.
        model_loader: the model seam (module docstring); None = the trained checkpoints.
        plots: also draw the four figures.
        smooth_mm, ambiguity_ratio, min_separation_mm: decoder and decision parameters;
            None = the folds' ``eval`` config section.
        progress: tqdm bars.
        overwrite: replace thresholds that ``l3loc calibrate`` wrote into ``out_dir``'s
            decision (refused otherwise: a re-evaluation would silently undo a calibration).

    Returns:
        The summary: one row per view (``l3loc.metrics.SUMMARY_COLUMNS`` plus view, decoder,
        threshold, threshold_chosen).

    Raises:
        InputError: no splits, no trained fold matching the request, fused asked without both
            nets, unknown view or decoder, a calibrated decision and ``overwrite`` off.
    """
    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir is not None else exp_dir / "eval"
    calibrated = [v for v, e in ((read_decision(exp_dir) or {}).get("views") or {}).items()
                  if "calibration" in e] if out_dir == exp_dir / "eval" else []
    if calibrated and not overwrite:
        raise InputError(out_dir / DECISION, f"holds thresholds chosen by l3loc calibrate "
                                             f"({', '.join(calibrated)}); pass --overwrite to "
                                             "replace them with the k-fold's")
    bad = [v for v in (views or []) if v not in EVAL_VIEWS]
    if bad:
        raise InputError("--view", f"unknown view(s) {bad}: expected {EVAL_VIEWS}")
    if decoder is not None and decoder not in DECODERS:
        raise InputError("--decoder", f"unknown decoder {decoder!r}: expected {DECODERS}")
    splits = read_splits(exp_dir)
    wanted = list(views) if views else list(EVAL_VIEWS)
    net_views = [v for v in NET_VIEWS if v in wanted or FUSED in wanted or REFINED in wanted]
    runs = trained_folds(exp_dir, net_views, folds)
    if not runs:
        raise InputError(exp_dir, f"no trained fold (best.pdparams + config.yaml) for views "
                                  f"{net_views}" + (f", folds {list(folds)}" if folds else ""))
    results = {}
    for view, k, d in runs:
        log.info("[EVAL] %s fold %d: %d held-out cases", view, k, len(splits[k - 1]))
        done, epochs = epochs_done(d)
        if done < epochs:
            log.warning("[EVAL] %s: %d of %d epochs logged (still training or stopped); "
                        "evaluating its best.pdparams so far", d, done, epochs)
        # profiles are kept in <exp>/eval/profiles whatever out_dir is: narrowed runs share them
        results[(view, k)] = fold_profiles(view, k, d, splits, model_loader,
                                           exp_dir / "eval" / "profiles", progress)
    both = sorted(k for (v, k) in results if v == "frontal" and ("sagittal", k) in results)
    # both nets of a fold: fused (their profiles' mean) and refined (the frontal decision, its
    # rows placed by the sagittal net), each when the two views' rows are the same slices
    two_net = [v for v in (FUSED, REFINED) if v in wanted]
    asked = [v for v in two_net if views and v in views]
    if asked and not both:
        raise InputError(exp_dir, f"{asked[0]} needs the frontal and the sagittal net of a fold")
    for k in both if two_net else []:
        try:
            fused = fuse_folds(results[("frontal", k)], results[("sagittal", k)])
        except InputError as exc:
            if asked:
                raise
            # not asked for by name: report the single views rather than nothing
            log.warning("[EVAL] fold %d neither fused nor refined: %s", k, exc.problem)
            continue
        if FUSED in wanted:
            results[(FUSED, k)] = fused
        if REFINED in wanted:
            results[(REFINED, k)] = dataclasses.replace(results[("frontal", k)], view=REFINED)
    report_views = [v for v in EVAL_VIEWS if v in wanted and any(rv == v for rv, _ in results)]
    ev = results[(runs[0][0], runs[0][1])].cfg["eval"]
    decoder = decoder or ev["decoder"]
    smooth_mm = ev["smooth_mm"] if smooth_mm is None else smooth_mm
    ambiguity_ratio = ev["ambiguity_ratio"] if ambiguity_ratio is None else ambiguity_ratio
    if min_separation_mm is None:
        min_separation_mm = ev["min_separation_mm"]

    cases, extra, level_cases = [], {}, []
    for view in report_views:
        view_results = [results[(v, k)] for (v, k) in sorted(results) if v == view]
        placing = [results[(PLACING_VIEW, r.fold)] for r in view_results] if view == REFINED else None
        df, extra[view] = decide_view(view_results, decoder, threshold, smooth_mm,
                                      ambiguity_ratio, min_separation_mm, placing)
        cases.append(df)
        if view_results[0].level_profiles is not None:
            counting = df if placing is None else decide_view(
                view_results, decoder, threshold, smooth_mm, ambiguity_ratio, min_separation_mm)[0]
            level_cases.append(decide_levels_view(view_results, counting, smooth_mm, placing))
    per_case = pd.concat(cases, ignore_index=True)
    per_fold = summarize(per_case, ["view", "fold"])
    summary = summarize(per_case, ["view"])
    summary.insert(1, "decoder", decoder)
    summary["threshold"] = [extra[v]["threshold"] for v in summary["view"]]
    summary["threshold_chosen"] = [extra[v]["threshold_chosen"] for v in summary["view"]]
    summary["threshold_method"] = [extra[v]["threshold_method"] for v in summary["view"]]

    write_table(out_dir / "per_case.csv", per_case, float_format="%.4f")
    write_table(out_dir / "per_fold.csv", per_fold, float_format="%.4f")
    write_table(out_dir / "summary.csv", summary, float_format="%.4f")
    # what prediction uses, machine-readable; the mean counts the gross failures (one vertebra
    # off) that the median hides
    means = pd.to_numeric(summary["mean_mm"], errors="coerce")
    best = str(summary.loc[means.idxmin(), "view"]) if means.notna().any() else None
    write_decision(out_dir, {v: {"threshold": float(extra[v]["threshold"]),
                                 "threshold_method": extra[v]["threshold_method"]}
                             for v in summary["view"]},
                   best, decoder,
                   weight_hashes(exp_dir, sorted({v for v, _, _ in runs})))
    folds_done = sorted({k for _, k in results})
    text = summary_markdown(
        summary, f"{exp_dir.name}: folds {', '.join(map(str, folds_done))} of {len(splits)}")
    if level_cases:
        per_level_case = pd.concat(level_cases, ignore_index=True)
        per_level = summarize_levels(per_level_case, ["view", "level", "decoder"])
        write_table(out_dir / "per_level_case.csv", per_level_case, float_format="%.4f")
        write_table(out_dir / "per_level.csv", per_level, float_format="%.4f")
        text += ("\n## Every level\n\nThe table above decodes the L3 channel alone; prediction "
                 "takes L3 from the sequence (`sequence` rows below).\n\n") + "\n".join(
            levels_markdown(per_level, ["view", "level", "decoder"])) + "\n"
    write_text(out_dir / "summary.md", text)
    if plots:
        plot_cumulative(per_case, out_dir / "cumulative_error.png")
        plot_per_fold(per_fold, out_dir / "per_fold.png")
        plot_training_curves(exp_dir, runs, out_dir / "training_curves.png")
        plot_worst_cases(per_case, results, decoder, smooth_mm, out_dir / "worst_cases.png")
    log.info("[EVAL] wrote %s", out_dir)
    return summary
