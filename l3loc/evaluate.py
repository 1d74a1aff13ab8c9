"""Evaluate an experiment: every trained fold of every view on its own held-out cases, plus the
two views fused; per-case and per-fold CSVs, a summary table and plots.

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

The model is a seam: ``model_loader(fold_dir, cfg) -> map_fn`` with ``map_fn(image [H, W]) ->
confidence map [H, W]``; the default loads ``best.pdparams`` into the configured network. Tests
plug in exact ("perfect") or shifted maps through the same path.

Thresholds: per view, the ``not_found`` threshold on the peak confidence of the run (what
prediction uses) is chosen on the pooled held-out predictions of all evaluated folds
(``l3loc.metrics.choose_threshold``), unless one is given; with no negative case there is
nothing to choose from and ``eval.threshold`` of the config is used. The figures of the table
are cross-fitted: fold K's cases are scored with the threshold chosen on the other folds, so no
case helps choose the threshold it is scored with (see :func:`decide_view`).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from l3loc.atomic import atomic_path, write_table, write_text
from l3loc.decode import DECODERS, Decision, classify, decode_profile, fuse_profiles, row_profile
from l3loc.errors import InputError
from l3loc.levels import level_decision
from l3loc.metrics import (CASE_COLUMNS, LEVEL_CASE_COLUMNS, RIGHT_LEVEL_MM, case_record, choose_threshold,
                           levels_markdown, summarize, summarize_levels)
from l3loc.case_geometry import CaseGeometry
from l3loc.preprocess import PreprocessConfig, band_col_range
from l3loc.runs import NET_VIEWS, epochs_done, read_splits, trained_folds, weight_hashes, write_decision

log = logging.getLogger("l3loc")

#: Views a trained net exists for, and the views evaluation reports.
EVAL_VIEWS = ("frontal", "sagittal", "fused")

MapFn = Callable[[np.ndarray], np.ndarray]
ModelLoader = Callable[[Path, dict], MapFn]


@dataclass
class FoldProfiles:
    """The raw row profiles of one fold's held-out cases under that fold's model of one view.

    Attributes:
        view, fold: which net (1-based fold).
        cfg: the fold's resolved config.
        names: held-out case names (= ``splits[fold-1]``, in that order).
        label_rows: true processed rows (NaN = negative case).
        geometries: one ``CaseGeometry`` per case.
        profiles: raw ``row_profile`` [H_i] per case (of the L3 channel).
        dataset: the view's ``CachedDataset`` (for drawing) and ``index`` (name -> its index).
        levels: the model's channels (``label.levels``; ("L3",) for a single-L3 model).
        level_profiles: a model with level channels: raw row profiles [len(levels), H_i] per
            case; None for a single-L3 model.
        level_label_rows: with ``level_profiles``, true processed rows [n, len(levels)] (NaN =
            absent).
    """

    view: str
    fold: int
    cfg: dict
    names: list[str]
    label_rows: np.ndarray
    geometries: list[CaseGeometry]
    profiles: list[np.ndarray]
    dataset: object = None
    index: dict = field(default_factory=dict)
    levels: tuple = ("L3",)
    level_profiles: list[np.ndarray] | None = None
    level_label_rows: np.ndarray | None = None

    @property
    def spacing_mm(self) -> float:
        return float(self.cfg["preprocess"]["spacing_mm"])


# ----------------------------------------------------------------------------- finding runs


# ----------------------------------------------------------------------------- profiles


def load_fold_model(fold_dir: Path, cfg: dict) -> MapFn:
    """The fold's ``best.pdparams`` in the configured network, as ``image -> confidence map``.

    Built as the engine builds it (fresh unique names), in eval mode, without gradients.
    """
    from l3loc.inference import DygraphMaps, load_fold_net

    net = load_fold_net(fold_dir, cfg)
    return DygraphMaps([net]).confidence_map


def _profile_cache_key(fold_dir: Path, dataset, names: Sequence[str], col_range,
                       levels: Sequence[str]) -> str:
    st = (Path(fold_dir) / "best.pdparams").stat()
    key = {"best": [st.st_size, st.st_mtime_ns], "cache": str(dataset.cache_dir),
           "names": list(names), "col_range": col_range}
    if tuple(levels) != ("L3",):
        key["levels"] = list(levels)
    return json.dumps(key, sort_keys=True)


def _read_profile_cache(path: Path, key: str) -> list[np.ndarray] | None:
    """The cached profiles ([H_i] each, or [levels, H_i] for a model with level channels:
    stored side by side along the last axis), None when absent or made otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return np.split(z["values"], np.cumsum(z["lengths"])[:-1], axis=-1)
    except (OSError, KeyError, ValueError):
        return None


def fold_profiles(view: str, fold: int, fold_dir: Path, splits: list[list[str]],
                  model_loader: ModelLoader | None = None, cache_dir: Path | None = None,
                  progress: bool = False) -> FoldProfiles:
    """Run fold ``fold``'s ``view`` model on exactly that fold's held-out cases.

    Args:
        view, fold: the net (1-based fold).
        fold_dir: its run folder (``config.yaml``, ``best.pdparams``).
        splits: the experiment's folds; the cases are ``splits[fold-1]``.
        model_loader: ``(fold_dir, cfg) -> map_fn``; None = ``load_fold_model``.
        cache_dir: where to keep the profiles for reuse (only with the default loader: a
            custom loader's maps are not identified by the checkpoint); None = no reuse.
        progress: tqdm bar.

    Raises:
        InputError: the fold is not in the splits, or a held-out case is missing from the data.
    """
    from tqdm import tqdm

    from l3loc.cache import open_cache
    from l3loc.config import load_config

    if not 1 <= fold <= len(splits):
        raise InputError(fold_dir, f"fold {fold} is not in splits.json ({len(splits)} folds)")
    cfg = load_config(Path(fold_dir) / "config.yaml")
    dataset = open_cache(cfg, view)
    index = {n: i for i, n in enumerate(dataset.names)}
    names = list(splits[fold - 1])
    missing = [n for n in names if n not in index]
    if missing:
        raise InputError(fold_dir, f"{len(missing)} held-out case(s) of fold {fold} are not in the "
                                   f"dataset {cfg['data']['source']} (e.g. {missing[:3]})")
    idx = [index[n] for n in names]
    levels = tuple(cfg["label"].get("levels", ["L3"]))
    multi = len(levels) > 1
    col_range = band_col_range(PreprocessConfig.from_dict(cfg["preprocess"]), view)
    cache_path = None
    profiles = None
    if cache_dir is not None and model_loader is None:
        cache_path = Path(cache_dir) / f"{view}_fold{fold}.npz"
        key = _profile_cache_key(fold_dir, dataset, names, list(col_range), levels)
        profiles = _read_profile_cache(cache_path, key)
        if profiles is not None:
            log.info("[EVAL] %s fold %d: reusing the profiles in %s", view, fold, cache_path)
    if profiles is None:
        map_fn = (model_loader or load_fold_model)(Path(fold_dir), cfg)
        profiles = []
        for i in tqdm(idx, desc=f"{view} fold {fold}", disable=not progress, leave=False):
            image, _, _ = dataset[i]
            prob = np.asarray(map_fn(image), dtype=np.float32)
            expected = (len(levels), *image.shape) if multi else image.shape
            if prob.shape != expected:
                raise ValueError(f"model map shape {prob.shape} != image shape {image.shape}"
                                 + (f" with {len(levels)} level channels" if multi else ""))
            profiles.append(np.stack([row_profile(m, col_range) for m in prob]).astype(np.float32)
                            if multi else row_profile(prob, col_range).astype(np.float32))
        if cache_path is not None:
            with atomic_path(cache_path) as tmp:
                np.savez(tmp, key=np.array(key), lengths=np.array([p.shape[-1] for p in profiles]),
                         values=np.concatenate(profiles, axis=-1))
    level_profiles = level_rows = None
    if multi:
        level_profiles = profiles
        profiles = [p[levels.index("L3")] for p in level_profiles]
        level_rows = np.stack([dataset.label_rows(i, levels) for i in idx])
    return FoldProfiles(view, fold, cfg, names, dataset.label_rows_px[idx].copy(),
                        [dataset.geometry(i) for i in idx], profiles, dataset, index, levels,
                        level_profiles, level_rows)


def fuse_folds(frontal: FoldProfiles, sagittal: FoldProfiles) -> FoldProfiles:
    """The fused view of one fold: row-wise ``fuse_profiles`` of the two views' raw profiles.

    Raises:
        InputError: the two views disagree on the row grid (spacing, a case's row count or
            label), so their rows are not the same slices.
    """
    where = f"fold {frontal.fold}"
    if frontal.spacing_mm != sagittal.spacing_mm:
        raise InputError(where, f"cannot fuse: frontal spacing {frontal.spacing_mm} mm, sagittal "
                                f"{sagittal.spacing_mm} mm")
    if frontal.names != sagittal.names:
        raise InputError(where, "cannot fuse: the two views hold different cases")
    fused = []
    for name, gf, gs, pf, ps in zip(frontal.names, frontal.geometries, sagittal.geometries,
                                    frontal.profiles, sagittal.profiles):
        if gf.n_rows != gs.n_rows or len(pf) != len(ps):
            raise InputError(where, f"cannot fuse case {name!r}: frontal has {gf.n_rows} rows, "
                                    f"sagittal {gs.n_rows}")
        fused.append(fuse_profiles([pf, ps]))
    same = np.allclose(frontal.label_rows, sagittal.label_rows, equal_nan=True)
    if not same:
        raise InputError(where, "cannot fuse: the two views' label rows differ")
    if frontal.levels != sagittal.levels:
        raise InputError(where, f"cannot fuse: frontal locates {frontal.levels}, sagittal "
                                f"{sagittal.levels}")
    # the level channels fuse as prediction fuses them: the mean of the raw profiles
    level_profiles = None if frontal.level_profiles is None else [
        np.mean([a, b], axis=0) for a, b in zip(frontal.level_profiles, sagittal.level_profiles)]
    return FoldProfiles("fused", frontal.fold, sagittal.cfg, frontal.names, frontal.label_rows,
                        sagittal.geometries, fused, sagittal.dataset, sagittal.index,
                        frontal.levels, level_profiles, frontal.level_label_rows)


# ----------------------------------------------------------------------------- decisions


def decide_view(results: Sequence[FoldProfiles], decoder: str, threshold: float | None,
                smooth_mm: float = 2.0, ambiguity_ratio: float = 0.8,
                min_separation_mm: float = 20.0) -> tuple[pd.DataFrame, dict]:
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

    Returns:
        (per-case rows with ``CASE_COLUMNS`` plus ``threshold`` (the one the case was scored
        with), {"threshold" (the run's), "threshold_chosen", "threshold_method"}).
    """
    decoded = [[decode_profile(p, decoder, r.spacing_mm, smooth_mm) for p in r.profiles]
               for r in results]
    fallback = float(results[0].cfg["eval"]["threshold"])

    def chosen_on(folds: Sequence[int]) -> tuple[float, bool]:
        conf = [d.confidence for i in folds for d in decoded[i]]
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
    for r, ds, thr in zip(results, decoded, per_fold):
        for name, label, geom, d in zip(r.names, r.label_rows, r.geometries, ds):
            decision = classify(d.profile, r.spacing_mm, thr, ambiguity_ratio,
                                min_separation_mm, subpixel=decoder == "profile")
            rows.append({**case_record(r.view, r.fold, name, float(label), decision, geom,
                                       r.spacing_mm), "threshold": thr})
    return pd.DataFrame(rows, columns=[*CASE_COLUMNS, "threshold"]), {
        "threshold": run_threshold, "threshold_chosen": chosen, "threshold_method": method}


def decide_levels_view(results: Sequence[FoldProfiles], per_case: pd.DataFrame,
                       smooth_mm: float = 2.0) -> pd.DataFrame:
    """Every level of every case of one view's folds of a model with level channels: the
    sequence decoder's decision (``l3loc.levels.level_decision``, what prediction does) and,
    for comparison on the same cases, the single L3 channel's (``decoder`` = ``L3 channel``:
    ``per_case``'s decision).

    Args:
        results: the view's ``FoldProfiles`` (with ``level_profiles``).
        per_case: ``decide_view``'s rows of these folds (the L3 channel's decision and the
            threshold each case is scored with).
        smooth_mm: as ``decode_levels``.

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

    for r in results:
        for k, name in enumerate(r.names):
            c = cases.loc[(r.fold, name)]
            channel = Decision(c["status"], float(c["pred_row"]), float(c["confidence"]),
                               float(c["second_row"]), float(c["second_confidence"]))
            d = level_decision(r.level_profiles[k], r.levels, channel, r.spacing_mm, smooth_mm,
                               float(c["threshold"]))
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


# ----------------------------------------------------------------------------- tables


def summary_markdown(summary: pd.DataFrame, title: str) -> str:
    """The summary as a Markdown table (the reference's frontal/sagittal table, extended)."""
    def f(x, d=2):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"

    lines = [f"# {title}", "",
             "| view | decoder | cases (+/−) | mean ± std mm | median mm | p90 mm | max mm | "
             "≤5 mm | ≤10 mm | mean ± std slices | found / not found / ambiguous | "
             "negatives right | threshold |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        thr = f(r["threshold"], 3) + ("" if r["threshold_chosen"] else " (set)")
        neg = (f"{r['negative_right']}/{r['n_negative']}" if r["n_negative"] else "–")
        lines.append(
            f"| {r['view']} | {r['decoder']} | {r['n_cases']} ({r['n_positive']}/{r['n_negative']}) "
            f"| {f(r['mean_mm'])} ± {f(r['std_mm'])} | {f(r['median_mm'])} | {f(r['p90_mm'])} "
            f"| {f(r['max_mm'])} | {f(r['within_5mm_pct'], 1)} % | {f(r['within_10mm_pct'], 1)} % "
            f"| {f(r['mean_slices'])} ± {f(r['std_slices'])} "
            f"| {r['found']} / {r['not_found']} / {r['ambiguous']} | {neg} | {thr} |")
    lines += ["", "Errors over every positive held-out case of every fold (whatever its status); "
              "std with ddof=0; negatives right = negative cases called not_found; "
              "threshold = the run's threshold on the peak confidence (what prediction uses), "
              "chosen on all these held-out folds unless (set)."]
    methods = dict(zip(summary["view"], summary.get("threshold_method", [])))
    if methods:
        lines += ["", "The statuses of the table (found / not found / ambiguous, negatives right) "
                  "come from: " + "; ".join(f"{v}: {m}" for v, m in methods.items()) + "."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    _plt().close(fig)


def plot_cumulative(per_case: pd.DataFrame, path: Path) -> None:
    """Share of positive cases within x mm, one curve per view."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    xmax = 30.0
    for view, g in per_case[~per_case["negative"]].groupby("view", sort=False):
        err = np.sort(g["error_mm"].to_numpy())
        ax.step(np.concatenate([[0], err]), np.arange(len(err) + 1) / len(err) * 100, where="post",
                label=f"{view} (median {np.median(err):.1f} mm)")
        xmax = max(xmax, min(float(np.percentile(err, 98)), 200.0))
    for x in (5, 10):
        ax.axvline(x, color="grey", lw=0.5, ls="--")
    ax.set(xlabel="error (mm)", ylabel="% of positive cases within", xlim=(0, xmax), ylim=(0, 100),
           title="cumulative L3 error")
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_per_fold(per_fold: pd.DataFrame, path: Path) -> None:
    """Mean (bar) and median (dot) error per fold, bars grouped by view."""
    plt = _plt()
    views = list(dict.fromkeys(per_fold["view"]))
    folds = sorted(per_fold["fold"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(folds) * len(views)), 3.5))
    width = 0.8 / max(1, len(views))
    for j, view in enumerate(views):
        g = per_fold[per_fold["view"] == view].set_index("fold").reindex(folds)
        x = np.arange(len(folds)) + (j - (len(views) - 1) / 2) * width
        ax.bar(x, g["mean_mm"], width, label=f"{view} mean", yerr=g["std_mm"], capsize=2, alpha=0.8)
        ax.plot(x, g["median_mm"], "k.", ms=6)
    ax.set_xticks(np.arange(len(folds)), [f"fold {k}" for k in folds])
    ax.set(ylabel="error (mm)", title="error per fold (bar = mean ± std, dot = median)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_training_curves(exp_dir: Path, runs: Sequence[tuple[str, int, Path]], path: Path) -> None:
    """Training loss and validation mean error per epoch of every fold, one column per view."""
    plt = _plt()
    views = list(dict.fromkeys(v for v, _, _ in runs))
    fig, axes = plt.subplots(2, len(views), figsize=(5 * len(views), 6), squeeze=False)
    for j, view in enumerate(views):
        for v, k, d in runs:
            if v != view or not (d / "train_log.csv").is_file():
                continue
            logdf = pd.read_csv(d / "train_log.csv")
            ep = logdf["epoch"] + 1
            line, = axes[0, j].plot(ep, logdf["train_loss"], "-", label=f"fold {k} train")
            axes[0, j].plot(ep, logdf["val_loss"], "--", color=line.get_color())
            axes[1, j].plot(ep, logdf["val_mean_error_mm"], "o-", ms=3, label=f"fold {k}")
        axes[0, j].set(title=f"{view}: loss (solid train, dashed validation)", yscale="log")
        axes[1, j].set(title=f"{view}: validation mean error", xlabel="epoch", ylabel="mm",
                       yscale="log")  # the first epochs are 10-100x the last
        axes[1, j].legend(fontsize=7)
    fig.suptitle(Path(exp_dir).name)
    fig.tight_layout()
    _save(fig, path)


def plot_worst_cases(per_case: pd.DataFrame, results: dict, decoder: str, smooth_mm: float,
                     path: Path, n: int = 8) -> None:
    """The ``n`` largest errors: MIP with the true (green) and predicted (red) rows, and the
    decoded row profile beside it (fused cases are drawn on the sagittal MIP)."""
    plt = _plt()
    worst = per_case[~per_case["negative"]].sort_values("error_mm", ascending=False).head(n)
    if worst.empty:
        return
    cols = 4  # two cases per figure row: image, profile, image, profile
    nrows = math.ceil(len(worst) / 2)
    fig, axes = plt.subplots(nrows, cols, figsize=(10, 4 * nrows), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1, 3, 1]})
    for ax in axes.flat:
        ax.axis("off")
    for i, (_, r) in enumerate(worst.iterrows()):
        res = results[(r["view"], int(r["fold"]))]
        k = res.names.index(r["name"])
        image, _, _ = res.dataset[res.index[r["name"]]]
        prof = decode_profile(res.profiles[k], decoder, res.spacing_mm, smooth_mm).profile
        ax_img, ax_pro = axes[i // 2, 2 * (i % 2)], axes[i // 2, 2 * (i % 2) + 1]
        ax_img.imshow(image, cmap="gray", aspect="auto", vmin=0, vmax=1)
        ax_img.axhline(r["true_row"], color="lime", lw=1)
        ax_img.axhline(r["pred_row"], color="red", lw=1, ls="--")
        ax_img.set_title(f"{r['name']} {r['view']} f{int(r['fold'])}: {r['error_mm']:.0f} mm, "
                         f"{r['status']}", fontsize=8)
        ax_pro.axis("on")
        ax_pro.plot(prof, np.arange(len(prof)))
        ax_pro.set_ylim(len(prof) - 0.5, -0.5)
        ax_pro.set_xlim(0, 1)
        ax_pro.axhline(r["true_row"], color="lime", lw=1)
        ax_pro.axhline(r["pred_row"], color="red", lw=1, ls="--")
        ax_pro.set_yticks([])
        ax_pro.tick_params(labelsize=6)
    fig.tight_layout()
    _save(fig, path)


# ----------------------------------------------------------------------------- the whole run


def evaluate_experiment(exp_dir: str | Path, views: Sequence[str] | None = None,
                        folds: Sequence[int] | None = None, decoder: str | None = None,
                        threshold: float | None = None, out_dir: str | Path | None = None,
                        model_loader: ModelLoader | None = None, plots: bool = True,
                        smooth_mm: float | None = None, ambiguity_ratio: float | None = None,
                        min_separation_mm: float | None = None, progress: bool = False
                        ) -> pd.DataFrame:
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

    Returns:
        The summary: one row per view (``l3loc.metrics.SUMMARY_COLUMNS`` plus view, decoder,
        threshold, threshold_chosen).

    Raises:
        InputError: no splits, no trained fold matching the request, fused asked without both
            nets, unknown view or decoder.
    """
    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir is not None else exp_dir / "eval"
    bad = [v for v in (views or []) if v not in EVAL_VIEWS]
    if bad:
        raise InputError("--view", f"unknown view(s) {bad}: expected {EVAL_VIEWS}")
    if decoder is not None and decoder not in DECODERS:
        raise InputError("--decoder", f"unknown decoder {decoder!r}: expected {DECODERS}")
    splits = read_splits(exp_dir)
    wanted = list(views) if views else list(EVAL_VIEWS)
    net_views = [v for v in NET_VIEWS if v in wanted or "fused" in wanted]
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
    if "fused" in wanted:
        if not both and views and "fused" in views:
            raise InputError(exp_dir, "fused needs the frontal and the sagittal net of a fold")
        for k in both:
            try:
                results[("fused", k)] = fuse_folds(results[("frontal", k)],
                                                   results[("sagittal", k)])
            except InputError as exc:
                if views and "fused" in views:
                    raise
                # not asked for by name: report the single views rather than nothing
                log.warning("[EVAL] fold %d not fused: %s", k, exc.problem)
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
        df, extra[view] = decide_view(view_results, decoder, threshold, smooth_mm,
                                      ambiguity_ratio, min_separation_mm)
        cases.append(df)
        if view_results[0].level_profiles is not None:
            level_cases.append(decide_levels_view(view_results, df, smooth_mm))
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
    # what prediction uses, machine-readable ("both" is prediction's name for the fused view);
    # the mean counts the gross failures (one vertebra off) that the median hides
    as_predicted = {"fused": "both"}
    means = pd.to_numeric(summary["mean_mm"], errors="coerce")
    best = str(summary.loc[means.idxmin(), "view"]) if means.notna().any() else None
    write_decision(out_dir, {as_predicted.get(v, v): {"threshold": float(extra[v]["threshold"]),
                                                      "threshold_method": extra[v]["threshold_method"]}
                             for v in summary["view"]},
                   as_predicted.get(best, best), decoder,
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
