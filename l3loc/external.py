"""External evaluation: a trained experiment on a dataset it was not trained on (train on A,
test on B), every case a test case.

The dataset is one of

- an ``l3_dataset.npz`` in the paper's layout (2-D MIPs): the MIPs go through the training
  cache's preprocessing (``l3loc.cache``), then the same maps, decoding and classification as
  prediction;
- an annotation CSV of scans (``l3loc.io.annotations``; optional ``l3_top_z_mm`` /
  ``l3_bottom_z_mm`` give the L3 body's extent), or a folder holding ``labels.csv``: each scan
  goes through exactly prediction's code (``read_scan`` -> ``localise`` ->
  ``localisation_record``), so the figures are the ones a user gets.

Models: for each trained view, and fused when both are trained, the fold ensemble that
prediction uses (every trained fold, maps averaged) and, with ``per_fold``, each fold alone.
Each model is scored with the run's threshold (what prediction uses: ``eval/decision.json`` of the
k-fold evaluation, else the config's). The threshold that would be best on this dataset is
reported beside it, marked optimistic: it is chosen on the very cases it is scored on.

Right level: with the body's extent, the predicted z lies inside the L3 body +-5 mm; without it,
the error is <= 10 mm (about a third of a vertebra plus disc). The worst outcome is a confident
wrong slice: a positive case ``found`` at the wrong level (``wrong_level_found``).

Every level: a model with one channel per level (``label.levels``) is scored as prediction runs
it, L3 from the anatomical sequence (``l3loc.localisation.decide_maps``, on the npz path too).
``per_case.csv`` then adds, for every level the model locates or the labels give (annotation
columns ``t12_z_mm``.. ``s1_z_mm`` / ``*_slice``; npz ``level_rows``), the predicted and true z,
the error and the right level (within 10 mm), and the L3 channel's own decision beside the
sequence's L3; ``per_level.csv`` and a table in ``summary.md`` summarise them per level
(``l3loc.metrics.summarize_levels``). Labels with L3 only (the real validation set) give the
per-level columns of the predictions and score L3 alone.

Writes ``<out>/per_case.csv``, ``summary.csv``, ``summary.md``, ``per_level.csv`` (models with
level channels, or labels with levels) and ``montage_<view>.png`` (every
case, or the 48 most worth a look of a larger set: both MIPs with the true L3 body shaded and the
predicted line, and the confidence profile) for the ensemble of each view. ``<out>`` defaults to
``<exp>/eval_<dataset name>``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from l3loc.atomic import write_table, write_text
from l3loc.decode import classify, fuse_profiles, with_fold_claims
from l3loc.errors import InputError
from l3loc.external_tables import (level_cases, level_columns, level_fields, right_level,
                                   summarize_external, summary_markdown)
from l3loc.inference import Localiser, load_localiser
from l3loc.runs import FUSED, REFINED, available_folds, model_folds, nets_of, trained_views
from l3loc.levels import LEVELS, decide_l3
from l3loc.metrics import choose_threshold, levels_markdown, summarize_levels
from l3loc.mip import VIEWS, mip
from l3loc.preprocess import window_hu

log = logging.getLogger("l3loc")

LABELS_CSV = "labels.csv"

#: Columns of the external ``per_case.csv``, in order.
EXTERNAL_COLUMNS = (
    "view", "folds", "name", "negative", "status", "right_level", "confidence", "threshold",
    "pred_slice", "pred_z_mm", "second_z_mm", "second_confidence", "true_slice", "true_z_mm",
    "l3_top_z_mm", "l3_bottom_z_mm", "error_mm", "message", "warnings", "input")


@dataclass
class ExternalModel:
    """One model scored: a view (``frontal``, ``sagittal`` or ``fused``) and its folds."""

    view: str
    folds: str                  # "ensemble" or "fold K"
    localiser: Localiser


@dataclass
class _Profiles:
    """What the montage and the optimistic threshold need of one case under one model."""

    profile: np.ndarray | None = None        # decoded profile of the model's decision
    decision: object = None                  # the decision (a LevelDecision: re-decided from it)
    rows_mm: np.ndarray | None = None        # z (mm) of every processed row
    mips: dict = field(default_factory=dict)  # view -> (MIP in the [0, 1] window, z of its rows)


def dataset_name(path: str | Path) -> str:
    """``real_val`` for a folder, the file stem for a CSV or npz, and the folder's name for a
    file with a generic name (``synth300/l3_dataset.npz`` -> ``synth300``)."""
    p = Path(path).absolute()
    name = p.name if p.is_dir() else p.name.split(".")[0]
    if name in ("l3_dataset", LABELS_CSV.split(".")[0], "annotations"):
        name = p.parent.name
    return name or "data"


def resolve_dataset(path: str | Path) -> tuple[str, Path]:
    """("npz" | "scans", file) of a dataset argument.

    Raises:
        InputError: missing, or neither an npz, a CSV nor a folder holding ``labels.csv``.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / LABELS_CSV).is_file():
            raise InputError(p, f"a dataset folder must hold {LABELS_CSV} (an annotation CSV)")
        return "scans", p / LABELS_CSV
    if not p.is_file():
        raise InputError(p, "does not exist")
    if p.suffix.lower() == ".npz":
        return "npz", p
    if p.suffix.lower() == ".csv":
        return "scans", p
    raise InputError(p, "expected an l3_dataset.npz, an annotation CSV or a folder with "
                        f"{LABELS_CSV}")


def external_models(exp_dir: Path, per_fold: bool = False, device: str = "cpu",
                    threshold: float | None = None, backend: str = "auto",
                    folds: Sequence[int] | None = None) -> list[ExternalModel]:
    """The fold ensemble of every trained view (and fused and refined when both exist), and with
    ``per_fold`` each fold alone, loaded as prediction loads them. ``folds``: only these folds
    (the ensemble of those a view has; fused: those both views have). A fold is one a view
    has as training weights or as an export (an export folder, the shipped model, has only
    exports); a subset of folds or one fold alone runs the training weights when every fold
    has them, else the exported models."""
    views = trained_views(exp_dir)
    if not views:
        raise InputError(exp_dir, "no trained or exported folds")

    def common(view_set, folds_of) -> set[int]:
        return set.intersection(*(set(folds_of(exp_dir, v)) for v in view_set))

    def have(view_set) -> list[int]:
        held = common(view_set, model_folds)
        return sorted(held if folds is None else held & set(folds))

    def subset_backend(view_set, chosen) -> str:
        # the training weights (available_folds: best.pdparams) when they are all there, as the
        # k-fold evaluation scores a fold; else ``backend``, which picks the exported models
        return "dygraph" if set(chosen) <= common(view_set, available_folds) else backend

    fused = len(views) == 2
    if folds is not None:
        present = "; ".join(f"{v} {','.join(map(str, model_folds(exp_dir, v)))}" for v in views)
        views = [v for v in views if have([v])]
        if not views:
            raise InputError("--fold", f"no trained view of {exp_dir} has fold(s) "
                                       f"{','.join(map(str, folds))} (it has: {present})")
        fused = len(views) == 2 and bool(have(views))
    models = []
    for view in views + ([FUSED, REFINED] if fused else []):
        view_set = nets_of(view)
        chosen = have(view_set)
        models.append(ExternalModel(view, "ensemble", load_localiser(
            exp_dir, view, None if folds is None else chosen,
            backend if folds is None else subset_backend(view_set, chosen), device, threshold)))
        if per_fold:
            for k in chosen:
                models.append(ExternalModel(view, f"fold {k}", load_localiser(
                    exp_dir, view, [k], subset_backend(view_set, [k]), device, threshold)))
    return models


def external_out_dir(exp_dir: str | Path, data: str | Path,
                     folds: Sequence[int] | None = None) -> Path:
    """Default output folder of an external evaluation: ``<exp_dir>/eval_<dataset name>``, with
    ``_fold<K-L>`` for a subset of folds (so it never replaces the whole ensemble's)."""
    suffix = f"_fold{'-'.join(map(str, folds))}" if folds else ""
    return Path(exp_dir) / f"eval_{dataset_name(data)}{suffix}"


def _profile_of(profiles: dict, placing: str = "") -> np.ndarray:
    """The decoded profile a decision was made on: the deciding views' (fused when two); the
    view that only places rows (``refined``) has no say."""
    deciding = [p for v, p in profiles.items() if v != placing]
    return deciding[0] if len(deciding) == 1 else fuse_profiles(deciding)


def _case_row(model: ExternalModel, name: str, path: str, negative: bool, rec: dict,
              truth: dict, levels: dict | None = None) -> dict:
    """One ``per_case.csv`` row; ``levels``: the case's ``level_fields``."""
    top = float(truth.get("l3_top_z_mm", math.nan))
    bottom = float(truth.get("l3_bottom_z_mm", math.nan))
    pred_z = rec.get("pred_z_mm", math.nan)
    true_z = rec.get("true_z_mm", math.nan)
    levels = dict(levels or {})
    if "l3_channel_z_mm" in levels:   # the L3 channel's own answer, scored as the sequence's
        ch_z = levels["l3_channel_z_mm"]
        levels["l3_channel_error_mm"] = abs(ch_z - true_z) if not negative and math.isfinite(true_z) \
            else math.nan
        levels["l3_channel_right_level"] = (not negative) and right_level(ch_z, true_z, top, bottom)
    return {**levels,
        "view": model.view, "folds": model.folds, "name": name, "negative": negative,
        "status": rec["status"],
        "right_level": (not negative) and right_level(pred_z, true_z, top, bottom),
        "confidence": rec.get("confidence", math.nan), "threshold": model.localiser.threshold,
        "pred_slice": rec.get("pred_slice", math.nan), "pred_z_mm": pred_z,
        "second_z_mm": rec.get("second_z_mm", math.nan),
        "second_confidence": rec.get("second_confidence", math.nan),
        "true_slice": rec.get("true_slice", math.nan), "true_z_mm": true_z,
        "l3_top_z_mm": top, "l3_bottom_z_mm": bottom,
        "error_mm": abs(pred_z - true_z) if not negative and math.isfinite(pred_z)
        and math.isfinite(true_z) else math.nan,
        "message": rec.get("message", ""), "warnings": rec.get("warnings", ""), "input": path}


def _evaluate_scans(csv_path: Path, models: Sequence[ExternalModel], progress: bool
                    ) -> tuple[list[dict], dict]:
    """Every scan of an annotation CSV under every model, through prediction's code."""
    from tqdm import tqdm

    from l3loc.io.ct_checks import read_ct
    from l3loc.localisation import localise
    from l3loc.predict import localisation_record
    from l3loc.scan_inputs import list_inputs

    scans = list_inputs([csv_path])
    rows, extra = [], {}
    for scan in tqdm(scans, desc="external", unit="scan", disable=not progress):
        truth = dict(scan.truth or {})
        negative = bool(truth.get("negative", False))
        try:
            ct, findings = read_ct(scan.path, series_uid=scan.series_uid)  # not a CT: raises
        except InputError as exc:
            log.warning("[EVAL] %s: %s", scan.name, exc.problem)
            for m in models:
                rows.append(_case_row(m, scan.name, scan.path, negative,
                                      {"status": "error", "message": exc.problem}, truth))
            continue
        view_maps: dict = {}   # one scan's maps, shared by the models of the same net
        for m in models:
            try:
                outputs, decision, geom = localise(ct, m.localiser, view_maps)
                rec = localisation_record(ct, m.localiser, outputs, decision, geom,
                                          name=scan.name, truth=truth)
            except Exception as exc:  # one bad scan never stops the evaluation; the row says why
                log.warning("[EVAL] %s (%s %s): %s", scan.name, m.view, m.folds, exc)
                rows.append(_case_row(m, scan.name, scan.path, negative,
                                      {"status": "error", "message": f"{type(exc).__name__}: {exc}"},
                                      truth))
                continue
            # the best row's position whatever the status (an abstention is still scored)
            rec.update(pred_slice=float(geom.file_index(decision.row)),
                       pred_z_mm=float(geom.z_mm(decision.row)), warnings="; ".join(f.problem for f in findings))
            rows.append(_case_row(m, scan.name, scan.path, negative, rec, truth,
                                  level_fields(decision, geom, _true_levels_z(truth, ct))))
            if m.folds == "ensemble":
                profile = _profile_of({v: o.profile for v, o in outputs.items()},
                                      m.localiser.placing)
                z_native = ct.geometry.z_mm(np.arange(ct.geometry.n_slices))
                # both MIPs for the person reading the montage, also for a one-view model
                mips = {v: (outputs[v].native_mip_hu if v in outputs else
                            mip(ct.hu, v, ct.spacing_mm)) for v in VIEWS}
                extra[(m.view, scan.name)] = _Profiles(
                    profile, decision, geom.z_mm(np.arange(len(profile))),
                    {v: (window_hu(image), z_native) for v, image in mips.items()})
    return rows, extra


def _true_levels_z(truth: dict, ct) -> dict:
    """Level -> true z (mm) of the levels other than L3 an annotation row gives."""
    from l3loc.io.annotations import annotation_to_canonical_row

    out = {}
    for k in LEVELS:
        if k != "L3" and any(c in truth for c in (f"{k.lower()}_z_mm", f"{k.lower()}_slice")):
            try:
                c = annotation_to_canonical_row({**truth, "path": ct.path}, ct.geometry, k)
            except InputError as exc:
                # a level beyond the slices analysed (e.g. a tilted scan, de-sheared and cut to
                # where it covers the spine) is left unscored; the scan's L3 is still scored
                log.warning("[EVAL] %s: %s; %s is not scored", ct.path, exc.problem, k)
                continue
            if math.isfinite(c):
                out[k] = float(ct.geometry.z_mm(c))
    return out


def _evaluate_npz(npz_path: Path, models: Sequence[ExternalModel], progress: bool
                  ) -> tuple[list[dict], dict]:
    """Every case of an npz under every model: the cache's 2-D preprocessing, prediction's maps."""
    from tqdm import tqdm

    from l3loc.cache import open_cache
    from l3loc.localisation import decide_maps

    rows, extra, caches = [], {}, {}
    for m in models:
        views = m.localiser.views
        data = {}
        for v, vm in views.items():
            key = (v, str(vm.cfg["preprocess"]))
            if key not in caches:
                caches[key] = open_cache(vm.cfg, v, progress=progress, source=npz_path)
            data[v] = caches[key]
        first = next(iter(data.values()))
        for i in tqdm(range(len(first)), desc=f"{m.view} {m.folds}", disable=not progress,
                      leave=False):
            # prediction's own decision from the maps (the level sequence for level channels)
            per_view, d = decide_maps({v: vm.maps.fold_maps(data[v][i][0])
                                       for v, vm in views.items()}, m.localiser)
            profile = _profile_of({v: p for v, (p, _) in per_view.items()}, m.localiser.placing)
            geom = first.geometry(i)
            label = float(first.label_rows_px[i])
            negative = not math.isfinite(label)
            rec = {"status": d.status, "confidence": d.confidence,
                   "pred_slice": float(geom.file_index(d.row)), "pred_z_mm": float(geom.z_mm(d.row)),
                   "second_z_mm": float(geom.z_mm(d.second_row)) if d.status == "ambiguous" else math.nan,
                   "second_confidence": d.second_confidence if d.status == "ambiguous" else math.nan,
                   "true_slice": math.nan if negative else float(geom.file_index(label)),
                   "true_z_mm": math.nan if negative else float(geom.z_mm(label)),
                   "message": d.reason}
            true_rows = {} if first.level_rows_px is None else dict(zip(LEVELS, first.level_rows_px[i]))
            levels = level_fields(d, geom, {k: float(geom.z_mm(r)) for k, r in true_rows.items()
                                            if k != "L3" and math.isfinite(r)})
            rows.append(_case_row(m, first.names[i], str(npz_path), negative, rec, {}, levels))
            if m.folds == "ensemble":
                rows_mm = geom.z_mm(np.arange(len(profile)))
                extra[(m.view, first.names[i])] = _Profiles(
                    profile, d, rows_mm, {v: (data[v][i][0], rows_mm) for v in views})
    return rows, extra


def _threshold_confidence(cases: pd.DataFrame, extra: dict, view: str) -> np.ndarray:
    """The ensemble rows' confidences as a threshold sees them: 0 where the decision's row lies
    at the scan's end (never ``found`` at any threshold: ``l3loc.decode.scan_end``)."""
    at_end = [bool(getattr(getattr(extra.get((view, name)), "decision", None), "scan_end", ""))
              for name in cases["name"]]
    return np.where(at_end, 0.0, cases["confidence"].to_numpy(dtype=float))


def _reclassified(per_case: pd.DataFrame, extra: dict, models: Sequence[ExternalModel],
                  threshold: float) -> pd.Series:
    """Statuses of the ensemble rows under another threshold (same profiles)."""
    out = {}
    for m in models:
        if m.folds != "ensemble":
            continue
        vm = next(iter(m.localiser.views.values()))
        ev = vm.cfg["eval"]
        for idx, r in per_case[(per_case["view"] == m.view) & (per_case["folds"] == m.folds)].iterrows():
            p = extra.get((m.view, r["name"]))
            if p is None or p.profile is None:
                out[idx] = r["status"]
                continue
            if getattr(p.decision, "sequence", None) is not None:   # L3 from the sequence
                ch = p.decision.channel
                out[idx] = decide_l3(p.decision.sequence, ch.row, vm.spacing_mm, threshold,
                                     l3_channel_confidence=ch.confidence,
                                     views=p.decision.views, folds=p.decision.folds,
                                     n_rows=len(p.profile))[0]
                continue
            d = classify(p.profile, vm.spacing_mm, threshold, ev["ambiguity_ratio"],
                         ev["min_separation_mm"], subpixel=ev["decoder"] == "profile")
            out[idx] = with_fold_claims(d, p.decision.folds, vm.spacing_mm, threshold).status
    return pd.Series(out, dtype=object)


def evaluate_external(exp_dir: str | Path, data: str | Path, per_fold: bool = False,
                      out_dir: str | Path | None = None, threshold: float | None = None,
                      plots: bool = True, overwrite: bool = False, device: str = "cpu",
                      progress: bool = False, folds: Sequence[int] | None = None) -> pd.DataFrame:
    """Evaluate a trained experiment on an external dataset and write the result files.

    Args:
        exp_dir: ``work/<experiment>`` (or an export folder).
        data: an ``l3_dataset.npz``, an annotation CSV, or a folder holding ``labels.csv``.
        per_fold: also score each fold alone.
        out_dir: None = ``<exp_dir>/eval_<dataset name>``.
        threshold: override the run's threshold.
        plots: also draw the montages.
        overwrite: replace earlier results in ``out_dir``.
        device: "cpu" or "gpu".
        progress: tqdm bars.
        folds: only these folds (``external_models``); None = every trained fold.

    Returns:
        The summary (one row per view and fold set).

    Raises:
        InputError: bad dataset, nothing trained, or results exist and ``overwrite`` is off.
    """
    exp_dir = Path(exp_dir)
    kind, path = resolve_dataset(data)
    out_dir = Path(out_dir) if out_dir is not None else external_out_dir(exp_dir, data, folds)
    if (out_dir / "summary.csv").exists() and not overwrite:
        raise InputError(out_dir, "holds results of an earlier evaluation; use --overwrite or "
                                  "another --out")
    models = external_models(exp_dir, per_fold, device, threshold, folds=folds)
    rows, extra = (_evaluate_npz if kind == "npz" else _evaluate_scans)(path, models, progress)
    level_cols = level_columns(rows)
    per_case = pd.DataFrame(rows, columns=[*EXTERNAL_COLUMNS, *level_cols])
    summaries = []
    for m in models:
        cases = per_case[(per_case["view"] == m.view) & (per_case["folds"] == m.folds)]
        s = {"view": m.view, "folds": m.folds, **summarize_external(cases),
             "threshold": m.localiser.threshold, "threshold_source": m.localiser.threshold_source}
        opt_thr = math.nan
        if m.folds == "ensemble":
            ok = cases[cases["status"] != "error"]
            opt_thr, chosen = choose_threshold(_threshold_confidence(ok, extra, m.view),
                                               ok["negative"].to_numpy(dtype=bool), math.nan)
            if chosen:
                opt = cases.copy()
                opt["status"] = _reclassified(per_case, extra, [m], opt_thr)
                o = summarize_external(opt)
                s.update({f"opt_{k}": o[k] for k in ("right_level_found", "wrong_level_found",
                                                     "negatives_right")})
        s["opt_threshold"] = opt_thr
        summaries.append(s)
    summary = pd.DataFrame(summaries)
    write_table(out_dir / "per_case.csv", per_case, float_format="%.4f")
    write_table(out_dir / "summary.csv", summary, float_format="%.4f")
    text = summary_markdown(summary, f"{exp_dir.name} on {dataset_name(data)}", Path(data))
    if level_cols:
        by = ["view", "folds", "level", "decoder"]
        per_level = summarize_levels(level_cases(per_case), by)
        write_table(out_dir / "per_level.csv", per_level, float_format="%.4f")
        text += "\n## Every level\n\nz of the truth and of the prediction (rows: mm).\n\n" \
            + "\n".join(levels_markdown(per_level, by)) + "\n"
    write_text(out_dir / "summary.md", text)
    if plots:
        from l3loc.report import write_external_montage

        for m in models:
            if m.folds == "ensemble":
                cases = per_case[(per_case["view"] == m.view) & (per_case["folds"] == "ensemble")]
                write_external_montage(out_dir / f"montage_{m.view}.png", cases, {
                    name: extra.get((m.view, name)) for name in cases["name"]},
                    f"{exp_dir.name} ({m.view}, fold ensemble) on {dataset_name(data)}")
    log.info("[EVAL] wrote %s", out_dir)
    return summary
