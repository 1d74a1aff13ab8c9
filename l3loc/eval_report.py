"""What evaluation writes for people: the summary as Markdown and the plots (cumulative error,
per fold, training curves, worst cases). The numbers come from :mod:`l3loc.evaluate`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from l3loc.atomic import atomic_path
from l3loc.decode import decode_profile
from l3loc.report import pyplot


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


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    pyplot().close(fig)


def plot_cumulative(per_case: pd.DataFrame, path: Path) -> None:
    """Share of positive cases within x mm, one curve per view."""
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
