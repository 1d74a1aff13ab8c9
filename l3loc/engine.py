"""Train one fold of one view, validate it, and leave a self-contained, resumable run folder.

Run folder (``work/<experiment>/<view>/fold_<K>/``; the view level lets one experiment hold the
frontal and sagittal nets that evaluation fuses):

- ``train_log.csv``: epoch, lr, train_loss, val_loss, val_mean_error_mm, val_median_error_mm,
  seconds (one row per finished epoch);
- ``best.pdparams`` (lowest validation mean error), ``last.pdparams`` + ``last.pdopt`` (optimizer
  state, epoch and best-so-far, for ``--resume``);
- ``val_predictions.csv`` of the best epoch, ``curves.png``, the resolved ``config.yaml`` and
  ``env.json`` (versions, seed, device, command).

Determinism: the network is initialised after ``paddle.seed(seed)``; the data of epoch ``e`` are
drawn from ``numpy.random.default_rng([seed, fold, e])``, and the learning rate is a pure
function of the step. A run resumed from ``last`` therefore repeats the numbers of an
uninterrupted run.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

import l3loc
from l3loc.atomic import atomic_path, write_table, write_text
from l3loc.augment import Augmenter
from l3loc.cache import open_cache
from l3loc.config import save_config
from l3loc.decode import decode
from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.labels import annealed_sigma_mm, level_targets
from l3loc.preprocess import (PreprocessConfig, band_col_range, pad_rows_to_multiple, row_window,
                              sample_row_window)
from l3loc.splits import fold_cases, load_or_create_splits

log = logging.getLogger("l3loc")

LOG_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_mean_error_mm",
               "val_median_error_mm", "seconds")


@dataclass(frozen=True)
class FoldRun:
    """Where one fold of one view lives."""

    root: Path

    @classmethod
    def of(cls, cfg: dict, view: str, fold: int) -> "FoldRun":
        return cls(experiment_dir(cfg) / view / f"fold_{fold}")

    log = property(lambda self: self.root / "train_log.csv")
    best = property(lambda self: self.root / "best.pdparams")
    last = property(lambda self: self.root / "last.pdparams")
    last_opt = property(lambda self: self.root / "last.pdopt")
    val_predictions = property(lambda self: self.root / "val_predictions.csv")
    curves = property(lambda self: self.root / "curves.png")
    config = property(lambda self: self.root / "config.yaml")
    env = property(lambda self: self.root / "env.json")


def experiment_dir(cfg: dict) -> Path:
    return Path(cfg["work_dir"]) / cfg["experiment"]


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up then cosine decay to 1 % of ``base_lr``; a pure function of the step."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _git_commit() -> str | None:
    """The l3loc checkout's commit (None outside a git checkout): which code made a run."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def env_record(cfg: dict, device: str, command: str) -> dict:
    import paddle

    return {"l3loc": l3loc.__version__, "git_commit": _git_commit(), "python": sys.version.split()[0],
            "paddle": paddle.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "device": device, "seed": cfg["train"]["seed"],
            "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _sigma_mm(cfg: dict, epoch: int) -> float:
    lab = cfg["label"]
    if lab["sigma_start_mm"] <= 0 and lab["sigma_end_mm"] <= 0:
        return 0.0
    mode = "geometric" if min(lab["sigma_start_mm"], lab["sigma_end_mm"]) > 0 else "linear"
    return annealed_sigma_mm(epoch, cfg["train"]["epochs"], lab["sigma_start_mm"],
                             lab["sigma_end_mm"], mode=mode)


def _levels(cfg: dict) -> tuple[str, ...]:
    return tuple(cfg["label"].get("levels", ["L3"]))


def training_batch(dataset, indices, rng: np.random.Generator, augmenter: Augmenter | None,
                   cfg: dict, sigma_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, rows, cols]`` and band targets ``[N, levels, rows, cols]`` (one channel
    per level of ``label.levels``) for the cases at ``indices``.

    Each image is a random window of ``canvas`` rows (containing L3 with probability
    ``p_positive``), then augmented; the band targets follow the augmented label rows.
    """
    from l3loc.models import target_col_range

    pp = cfg["preprocess"]
    rows, spacing = int(pp["canvas"][0]), float(pp["spacing_mm"])
    levels = _levels(cfg)
    # the band's columns; all of them for a row-profile net (l3loc.models.target_col_range)
    target_cols = target_col_range(cfg, band_col_range(PreprocessConfig.from_dict(pp),
                                                       dataset.view))
    images, targets = [], []
    for i in indices:
        image, label_row, _ = dataset[int(i)]
        start = sample_row_window(image.shape[0], label_row, rows, rng, cfg["train"]["p_positive"])
        window = row_window(image, start, rows)
        labels = dataset.label_rows(int(i), levels) - start
        if augmenter is not None:
            window, labels = augmenter(window, labels)
        images.append(window)
        targets.append(level_targets(rows, window.shape[1], labels, cfg["label"]["half_height_mm"],
                                     spacing, target_cols, sigma_mm))
    return np.stack(images)[:, None], np.stack(targets)


def _padded_logits(model, image: np.ndarray):
    """Logits [1, 1, H', W] of a full-height image [H, W], padded at the bottom to the stride."""
    import paddle

    padded = pad_rows_to_multiple(image, model.stride)
    return model(paddle.to_tensor(padded[None, None].astype(np.float32)))


def _to_maps(logits, height: int) -> np.ndarray:
    """Sigmoid of padded logits, cropped back to the image's ``height`` rows: [levels, H, W]."""
    import paddle

    return paddle.nn.functional.sigmoid(logits).numpy()[0, :, :height]


def predict_map(model, image: np.ndarray) -> np.ndarray:
    """Sigmoid confidence map [H, W] of a full-height image [H, W] (padded to the net's stride);
    [levels, H, W] for a net with one channel per level."""
    maps = _to_maps(_padded_logits(model, image), image.shape[0])
    return maps[0] if maps.shape[0] == 1 else maps


def validate(model, loss_fn, dataset, indices, cfg: dict, sigma_mm: float) -> tuple[float, list[dict]]:
    """Validation loss (mean over cases) and one prediction row per case, on full-height images."""
    import paddle

    from l3loc.models import target_col_range

    pp, lab = cfg["preprocess"], cfg["label"]
    spacing = float(pp["spacing_mm"])
    levels = _levels(cfg)
    col_range = band_col_range(PreprocessConfig.from_dict(pp), dataset.view)
    target_cols = target_col_range(cfg, col_range)
    model.eval()
    losses, rows = [], []
    with paddle.no_grad():
        for i in indices:
            image, label_row, name = dataset[int(i)]
            logits = _padded_logits(model, image)
            target = level_targets(logits.shape[2], logits.shape[3],
                                   dataset.label_rows(int(i), levels), lab["half_height_mm"],
                                   spacing, target_cols, sigma_mm)
            losses.append(float(loss_fn(logits, paddle.to_tensor(target[None]))))
            # the L3 channel: model selection stays on the L3 error, comparable across targets
            prob = _to_maps(logits, image.shape[0])[levels.index("L3")]
            dec = decode(prob, cfg["eval"]["decoder"], col_range, spacing,
                         cfg["eval"]["smooth_mm"])
            geom = dataset.geometry(int(i))
            positive = math.isfinite(label_row)
            rows.append({
                "name": name, "negative": not positive, "true_row": label_row,
                "pred_row": dec.row, "confidence": dec.confidence,
                "error_mm": abs(dec.row - label_row) * spacing if positive else math.nan,
                "true_slice": float(geom.file_index(label_row)) if positive else math.nan,
                "pred_slice": float(geom.file_index(dec.row)),
                "true_z_mm": float(geom.z_mm(label_row)) if positive else math.nan,
                "pred_z_mm": float(geom.z_mm(dec.row)),
            })
    model.train()
    return float(np.mean(losses)) if losses else math.nan, rows


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def plot_curves(log_rows: list[dict], path: Path, title: str) -> None:
    """Loss and validation error per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in log_rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(epochs, [r["train_loss"] for r in log_rows], "o-", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in log_rows], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax1.legend()
    ax2.plot(epochs, [r["val_mean_error_mm"] for r in log_rows], "o-", label="mean")
    ax2.plot(epochs, [r["val_median_error_mm"] for r in log_rows], "o-", label="median")
    ax2.set(xlabel="epoch", ylabel="error (mm)", title="validation L3 error")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _save(obj, path: Path) -> None:
    import paddle

    with atomic_path(path) as tmp:
        paddle.save(obj, str(tmp))


def epochs_done(fold_dir: Path) -> tuple[int, int]:
    """(epochs logged, epochs configured) of a fold folder; fewer logged = still training or
    stopped, so its best.pdparams is not final. (0, 0) when unreadable."""
    run = FoldRun(Path(fold_dir))
    try:
        with open(run.config, encoding="utf-8") as fh:
            epochs = int(yaml.safe_load(fh)["train"]["epochs"])
        return len(_read_log(run.log)), epochs
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return 0, 0


def prepare_fold_dir(run: FoldRun, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a finished or running fold unless asked; create the folder."""
    if run.root.exists() and any(run.root.iterdir()):
        if overwrite:
            shutil.rmtree(run.root)
        elif resume:
            if not run.last_opt.exists():
                raise InputError(run.root, "--resume: no last.pdparams/last.pdopt to resume from")
            return
        else:
            raise InputError(run.root, "fold folder exists; use --resume to continue it or "
                                       "--overwrite to start again")
    elif resume:
        log.info("[TRAIN] %s: nothing to resume, starting from scratch", run.root)
    run.root.mkdir(parents=True, exist_ok=True)


def train_fold(cfg: dict, view: str, fold: int, *, resume: bool = False, overwrite: bool = False,
               device: str = "cpu", command: str = "", progress: bool = False) -> dict:
    """Train fold ``fold`` (1-based) of ``view`` and return a summary of the best epoch.

    Raises:
        InputError: missing dataset, fold outside 1..k, existing fold folder without
            ``resume``/``overwrite``.
    """
    import paddle

    # Fresh unique names (conv2d_0.w_0, its moment1_0, ...) for every run: the optimizer state is
    # keyed by them, so a resumed run must name things exactly as the interrupted one did, even
    # if this process built other models before.
    with paddle.utils.unique_name.guard():
        return _train_fold(cfg, view, fold, resume, overwrite, device, command, progress)


def _train_fold(cfg, view, fold, resume, overwrite, device, command, progress) -> dict:
    import paddle
    from tqdm import tqdm

    from l3loc.losses import build_loss, supervised_loss
    from l3loc.models import build_net

    tr = cfg["train"]
    dataset = open_cache(cfg, view)
    splits = load_or_create_splits(experiment_dir(cfg) / "splits.json", dataset.names,
                                   tr["folds"], tr["seed"])
    try:
        train_names, val_names = fold_cases(splits, fold)
    except ValueError as exc:
        raise InputError("--fold", str(exc)) from None
    index = {n: i for i, n in enumerate(dataset.names)}
    train_idx = np.array([index[n] for n in train_names])
    val_idx = np.array([index[n] for n in val_names])

    run = FoldRun.of(cfg, view, fold)
    prepare_fold_dir(run, resume, overwrite)
    save_config(cfg, run.config)
    write_text(run.env, json.dumps(env_record(cfg, device, command), indent=1))

    paddle.seed(tr["seed"])
    model = build_net(cfg)
    loss_fn = build_loss(cfg["loss"])
    optimizer = paddle.optimizer.AdamW(learning_rate=tr["lr"], parameters=model.parameters(),
                                       weight_decay=tr["weight_decay"])
    batch = tr["batch_size"]
    steps_per_epoch = tr["iters_per_epoch"] or max(1, math.ceil(len(train_idx) / batch))
    total_steps = steps_per_epoch * tr["epochs"]
    warmup = min(steps_per_epoch, max(1, total_steps // 20))

    start_epoch, best = 0, {"val_mean_error_mm": math.inf, "epoch": -1}
    log_rows: list[dict] = []
    if resume and run.last_opt.exists():
        state = load_checkpoint(run.last_opt)
        model.set_state_dict(load_checkpoint(run.last))
        optimizer.set_state_dict(state["optimizer"])
        start_epoch, best = int(state["epoch"]) + 1, state["best"]
        log_rows = [r for r in _read_log(run.log) if r["epoch"] < start_epoch]
        log.info("[TRAIN] resuming %s at epoch %d", run.root, start_epoch + 1)

    log.info("[TRAIN] %s fold %d/%d: %d training, %d validation cases, %d epochs x %d steps",
             view, fold, tr["folds"], len(train_idx), len(val_idx), tr["epochs"], steps_per_epoch)
    model.train()
    for epoch in range(start_epoch, tr["epochs"]):
        t0 = time.time()
        rng = np.random.default_rng([tr["seed"], fold, epoch])
        augmenter = Augmenter(cfg["augment"], view, rng, cfg["preprocess"]["spacing_mm"],
                              cfg["preprocess"]["hu_window"])
        sigma = _sigma_mm(cfg, epoch)
        order = np.concatenate([rng.permutation(train_idx)
                                for _ in range(math.ceil(steps_per_epoch * batch / len(train_idx)))])
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", disable=not progress,
                   leave=False)
        for step in bar:
            lr = lr_at(epoch * steps_per_epoch + step, total_steps, tr["lr"], warmup)
            optimizer.set_lr(lr)
            images, targets = training_batch(dataset, order[step * batch:(step + 1) * batch], rng,
                                             augmenter, cfg, sigma)
            loss = supervised_loss(loss_fn, model(paddle.to_tensor(images)),
                                   paddle.to_tensor(targets))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        val_loss, preds = validate(model, loss_fn, dataset, val_idx, cfg, sigma)
        errors = np.array([p["error_mm"] for p in preds if not p["negative"]])
        row = {"epoch": epoch, "lr": lr, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
               "val_mean_error_mm": float(errors.mean()) if errors.size else math.nan,
               "val_median_error_mm": float(np.median(errors)) if errors.size else math.nan,
               "seconds": time.time() - t0}
        log_rows.append(row)
        log.info("[TRAIN] %s fold %d epoch %d/%d, loss %.4f, lr %.2g | [VAL] loss %.4f, error "
                 "mean %.2f mm, median %.2f mm | %.0f s", view, fold, epoch + 1, tr["epochs"],
                 row["train_loss"], lr, val_loss, row["val_mean_error_mm"],
                 row["val_median_error_mm"], row["seconds"])
        # an epoch without a finite error (no positive validation case) still counts as the best
        # so far, so a model is always saved
        score = row["val_mean_error_mm"] if errors.size else -math.inf
        if score < best["val_mean_error_mm"] or best["epoch"] < 0:
            best = {"val_mean_error_mm": score, "epoch": epoch}
            _save(model.state_dict(), run.best)
            write_table(run.val_predictions, preds, list(preds[0]) if preds else ["name"])
        _save(model.state_dict(), run.last)
        _save({"optimizer": optimizer.state_dict(), "epoch": epoch, "best": best}, run.last_opt)
        write_table(run.log, log_rows, LOG_COLUMNS)
        plot_curves(log_rows, run.curves, f"{cfg['experiment']} {view} fold {fold}")
    return {"view": view, "fold": fold, "best_epoch": best["epoch"] + 1,
            "val_mean_error_mm": best["val_mean_error_mm"], "run": str(run.root)}


def check_components(cfg: dict, source) -> None:
    """Fail before any work if the config names an unknown model, loss or augmentation key."""
    from l3loc.augment import check_augment_config
    from l3loc.losses import build_loss
    from l3loc.models import build_net

    from l3loc.levels import check_levels

    try:
        check_levels(cfg["label"]["levels"])
        build_net(cfg)
        build_loss(cfg["loss"])
        check_augment_config(cfg["augment"])
    except (TypeError, ValueError) as exc:
        raise InputError(source, str(exc)) from None


def run_training(config_path, fold: str = "1", view: str | None = None,
                 experiment: str | None = None, opts: list[str] | None = None,
                 resume: bool = False, overwrite: bool = False, device: str = "auto",
                 command: str = "") -> list[dict]:
    """What ``tools/train.py`` does: resolve the config, then train the asked folds and views.

    ``view="both"`` trains two single-view nets (frontal, then sagittal) whose row profiles
    evaluation fuses; ``fold="all"`` trains folds 1..k in turn.
    """
    from l3loc.cli import progress_enabled, resolve_device
    from l3loc.config import VIEWS, load_config

    cfg = load_config(config_path, opts)
    cfg["experiment"] = experiment or Path(config_path).stem
    view = view or cfg["train"]["view"]
    if view not in VIEWS:
        raise InputError("--view", f"unknown view {view!r}: expected one of {VIEWS}")
    k = cfg["train"]["folds"]
    if fold == "all":
        folds = list(range(1, k + 1))
    else:
        try:
            folds = [int(fold)]
        except ValueError:
            raise InputError("--fold", f"expected 1..{k} or 'all', got {fold!r}") from None
        if not 1 <= folds[0] <= k:
            raise InputError("--fold", f"fold must be in 1..{k} (1-based), got {folds[0]}")
    check_components(cfg, config_path)
    device = resolve_device(device)
    views = ("frontal", "sagittal") if view == "both" else (view,)
    results = []
    for v in views:
        for f in folds:
            results.append(train_fold(cfg, v, f, resume=resume, overwrite=overwrite,
                                      device=device, command=command, progress=progress_enabled()))
    for r in results:
        log.info("[TRAIN] done: %s fold %d, best epoch %d, validation mean error %.2f mm -> %s",
                 r["view"], r["fold"], r["best_epoch"], r["val_mean_error_mm"], r["run"])
    return results
