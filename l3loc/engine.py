"""Train one fold of one view, validate it, and leave a self-contained, resumable run folder.

Run folder (``work/<experiment>/<view>/fold_<K>/``; the view level lets one experiment hold the
frontal and sagittal nets that evaluation fuses):

- ``train_log.csv``: epoch, lr, train_loss, val_loss, val_mean_error_mm, val_median_error_mm,
  seconds (one row per finished epoch);
  with ``data.select_source`` also the selection set's mean and median L3 error and fraction
  within 10 mm;
- ``best.pdparams`` (lowest validation mean error, or lowest mean error on the selection set
  when there is one: see :func:`open_select_dataset`), ``last.pdparams`` + ``last.pdopt`` (optimizer
  state, epoch and best-so-far, for ``--resume``);
- ``val_predictions.csv`` of the best epoch, ``curves.png``, the resolved ``config.yaml`` and
  ``env.json`` (versions, seed, device, command), ``train.log`` (the log of every session);
  the paths are :class:`l3loc.runs.FoldRun`'s.

``--resume`` continues from ``last`` with the fold's own config: a different one is refused
(naming the keys) unless allowed; only ``train.epochs`` may change.

Determinism: the network is initialised after ``paddle.seed(seed)``; the data of epoch ``e`` are
drawn from ``numpy.random.default_rng([seed, fold, e])``, and the learning rate is a pure
function of the step. A run resumed from ``last`` therefore repeats the numbers of an
uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

import l3loc
from l3loc import distributed
from l3loc.atomic import atomic_path, write_table, write_text
from l3loc.augment import Augmenter
from l3loc.cache import open_cache
from l3loc.config import save_config
from l3loc.decode import decode
from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.labels import annealed_sigma_mm, level_targets
from l3loc.preprocess import PreprocessConfig, band_col_range
from l3loc.row_windows import pad_rows_to_multiple, row_window, sample_row_window
from l3loc.runs import FoldRun, experiment_dir, read_train_log
from l3loc.splits import fold_cases, load_or_create_splits

log = logging.getLogger("l3loc")

SELECT_COLUMNS = ("select_mean_error_mm", "select_median_error_mm", "select_within_10mm")
LOG_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_mean_error_mm",
               "val_median_error_mm", "seconds")


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


def sample_rngs(seed: int, fold: int, epoch: int, step: int, positions) -> list[np.random.Generator]:
    """One generator per position of a step's global batch: a sample's window and augmentation
    depend on where it sits in the batch, not on which process draws it, so the ranks of a
    data-parallel run together see exactly the batch of one process."""
    return [np.random.default_rng([seed, fold, epoch, step, j]) for j in positions]


def training_batch(dataset, indices, rngs: Sequence[np.random.Generator], cfg: dict,
                   sigma_mm: float, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, rows, cols]`` and band targets ``[N, levels, rows, cols]`` (one channel
    per level of ``label.levels``) for the cases at ``indices``, ``rngs[k]`` drawing case k's.

    Each image is a random window of ``canvas`` rows (containing L3 with probability
    ``p_positive``), then augmented (``augment``); the band targets follow the augmented label
    rows.
    """
    from l3loc.models import target_col_range

    pp = cfg["preprocess"]
    rows, spacing = int(pp["canvas"][0]), float(pp["spacing_mm"])
    levels = _levels(cfg)
    # the band's columns; all of them for a row-profile net (l3loc.models.target_col_range)
    target_cols = target_col_range(cfg, band_col_range(PreprocessConfig.from_dict(pp),
                                                       dataset.view))
    images, targets = [], []
    for i, rng in zip(indices, rngs, strict=True):
        image, label_row, _ = dataset[int(i)]
        start = sample_row_window(image.shape[0], label_row, rows, rng, cfg["train"]["p_positive"])
        window = row_window(image, start, rows)
        labels = dataset.label_rows(int(i), levels) - start
        if augment:
            window, labels = Augmenter(cfg["augment"], dataset.view, rng, spacing,
                                       pp["hu_window"])(window, labels)
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
            maps = _to_maps(logits, image.shape[0])
            dec = decode(maps[levels.index("L3")], cfg["eval"]["decoder"], col_range, spacing,
                         cfg["eval"]["smooth_mm"])
            # the other channels each decoded alone (what each learns, for the log)
            level_errors = {}
            for level, m, true in zip(levels, maps, dataset.label_rows(int(i), levels)):
                if level != "L3":
                    d = decode(m, cfg["eval"]["decoder"], col_range, spacing, cfg["eval"]["smooth_mm"])
                    level_errors[f"error_mm_{level}"] = abs(d.row - true) * spacing

            geom = dataset.geometry(int(i))
            positive = math.isfinite(label_row)
            rows.append({
                "name": name, "negative": not positive, "true_row": label_row,
                "pred_row": dec.row, "confidence": dec.confidence,
                "error_mm": abs(dec.row - label_row) * spacing if positive else math.nan,
                "true_slice": float(geom.file_index(label_row)) if positive else math.nan,
                "pred_slice": float(geom.file_index(dec.row)),
                "true_z_mm": float(geom.z_mm(label_row)) if positive else math.nan,
                "pred_z_mm": float(geom.z_mm(dec.row)), **level_errors,
            })
    model.train()
    return float(np.mean(losses)) if losses else math.nan, rows


def open_select_dataset(cfg: dict, view: str):
    """The cached ``data.select_source``, the set on which the best epoch is chosen.

    Why: more epochs on one phantom generator can fit its look better while transferring worse
    (measured: a sagittal net's median error on another generator's phantoms went from 40 mm at
    epoch 3 to 104 mm at its best in-distribution epoch). Choosing the epoch on a family of phantoms
    held out of training (another style or generator; never the real validation set) picks the
    epoch that transfers best among those trained.
    """
    select_cfg = {**cfg, "data": {**cfg["data"], "source": cfg["data"]["select_source"]}}
    return open_cache(select_cfg, view)


def select_scores(net, loss_fn, dataset, cfg: dict, sigma_mm: float, rank: int,
                  n_ranks: int) -> dict:
    """The L3 error on every positive case of the selection set (ranks share the cases)."""
    _, preds = validate(net, loss_fn, dataset, np.arange(len(dataset))[rank::n_ranks], cfg,
                        sigma_mm)
    preds = distributed.gather_interleaved(preds, n_ranks)
    errors = np.array([p["error_mm"] for p in preds if not p["negative"]])
    if not errors.size:
        raise InputError(cfg["data"]["select_source"], "no case with L3 to choose an epoch on")
    return {"select_mean_error_mm": float(errors.mean()),
            "select_median_error_mm": float(np.median(errors)),
            "select_within_10mm": float((errors <= 10.0).mean())}


def log_columns(levels: Sequence[str], select: bool = False) -> tuple[str, ...]:
    """Columns of ``train_log.csv``: ``LOG_COLUMNS``, then each level's (other than L3) median
    validation error for a model with level channels, then the selection set's figures when
    the best epoch is chosen on one (``data.select_source``)."""
    return (LOG_COLUMNS + tuple(f"val_median_error_mm_{k}" for k in levels if k != "L3")
            + (SELECT_COLUMNS if select else ()))


def level_medians(preds: list[dict], levels: Sequence[str]) -> dict:
    """Each level's (other than L3) median validation error over the cases that have it (NaN
    when none does)."""
    out = {}
    for k in levels:
        if k != "L3":
            err = np.array([p[f"error_mm_{k}"] for p in preds], dtype=np.float64)
            err = err[np.isfinite(err)]
            out[f"val_median_error_mm_{k}"] = float(np.median(err)) if err.size else math.nan
    return out


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
    if "select_mean_error_mm" in log_rows[0]:
        ax2.plot(epochs, [r["select_mean_error_mm"] for r in log_rows], "s--",
                 label="selection set mean")
        ax2.set_yscale("log")
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


# Keys a resumed run may change: resuming exists to continue a run, possibly for more epochs;
# where the folder and cache live does not change what is trained.
_RESUMABLE_CHANGES = {"train.epochs", "experiment", "work_dir", "data.cache_dir"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_resume_config(run: FoldRun, cfg: dict, allow_config_change: bool) -> None:
    """Refuse to resume a fold with a config other than the one it was trained with (its
    ``config.yaml``), naming the keys that differ, unless ``allow_config_change``."""
    from l3loc.config import load_config

    before, now = _flat(load_config(run.config)), _flat(cfg)
    changed = sorted(k for k in before.keys() | now.keys()
                     if before.get(k) != now.get(k) and k not in _RESUMABLE_CHANGES)
    if not changed:
        return
    what = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
    if not allow_config_change:
        raise InputError(run.config, f"--resume with a different config ({what}); pass "
                                     "--allow-config-change to resume anyway, or --overwrite")
    log.warning("[TRAIN] %s: resuming with a changed config (%s)", run.root, what)


def prepare_fold_dir(run: FoldRun, resume: bool, overwrite: bool, write: bool = True,
                     cfg: dict | None = None, allow_config_change: bool = False) -> None:
    """Refuse to clobber a finished or running fold unless asked; create the folder.

    A resumed fold must keep its config (:func:`check_resume_config`, when ``cfg`` is given).
    ``write=False`` only checks (raising the same refusal): the data-parallel ranks other than
    rank 0, which alone deletes or creates anything.
    """
    if run.root.exists() and any(run.root.iterdir()):
        if overwrite:
            if write:
                shutil.rmtree(run.root)
        elif resume:
            if not run.last_opt.exists():
                raise InputError(run.root, "--resume: no last.pdparams/last.pdopt to resume from")
            if cfg is not None:
                check_resume_config(run, cfg, allow_config_change)
            return
        else:
            raise InputError(run.root, "fold folder exists; use --resume to continue it or "
                                       "--overwrite to start again")
    elif resume:
        log.info("[TRAIN] %s: nothing to resume, starting from scratch", run.root)
    if write:
        run.root.mkdir(parents=True, exist_ok=True)


def train_fold(cfg: dict, view: str, fold: int, *, resume: bool = False, overwrite: bool = False,
               device: str = "cpu", command: str = "", progress: bool = False,
               allow_config_change: bool = False) -> dict:
    """Train fold ``fold`` (1-based) of ``view`` and return a summary of the best epoch.

    Raises:
        InputError: missing dataset, fold outside 1..k, existing fold folder without
            ``resume``/``overwrite``, a resumed fold whose config changed (unless
            ``allow_config_change``).
    """
    import paddle

    # Fresh unique names (conv2d_0.w_0, its moment1_0, ...) for every run: the optimizer state is
    # keyed by them, so a resumed run must name things exactly as the interrupted one did, even
    # if this process built other models before.
    level = log.level
    try:
        with paddle.utils.unique_name.guard():
            return _train_fold(cfg, view, fold, resume, overwrite, device, command, progress,
                               allow_config_change)
    finally:
        for handler in [h for h in log.handlers if getattr(h, "l3loc_fold_log", False)]:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(level)


def _log_to_fold(path: Path) -> None:
    """Also write the training log (INFO and up) to ``path`` in the fold folder, so the run
    documents how it went; :func:`train_fold` removes the handler when the fold ends."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.l3loc_fold_log = True
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:  # the file gets INFO even if the console does not
        log.setLevel(logging.INFO)


def _train_fold(cfg, view, fold, resume, overwrite, device, command, progress,
                allow_config_change) -> dict:
    import paddle
    from tqdm import tqdm

    from l3loc.losses import build_loss, supervised_loss
    from l3loc.models import build_net

    tr = cfg["train"]
    rank, n_ranks = distributed.init()
    writer = rank == 0
    batch = tr["batch_size"]
    share = distributed.rank_share(batch, rank, n_ranks)
    sync_bn = distributed.use_sync_bn(tr["sync_bn"], n_ranks, device)
    # rank 0 builds the cache and splits.json; the others read them once they exist
    for turn in (True, False):
        if writer == turn:
            dataset = open_cache(cfg, view)
            splits = load_or_create_splits(experiment_dir(cfg) / "splits.json", dataset.names,
                                           tr["folds"], tr["seed"])
        distributed.barrier(n_ranks)
    try:
        train_names, val_names = fold_cases(splits, fold)
    except ValueError as exc:
        raise InputError("--fold", str(exc)) from None
    index = {n: i for i, n in enumerate(dataset.names)}
    train_idx = np.array([index[n] for n in train_names])
    val_idx = np.array([index[n] for n in val_names])

    run = FoldRun.of(cfg, view, fold)
    # every rank checks (and refuses alike) before rank 0 deletes or writes anything
    prepare_fold_dir(run, resume, overwrite, False, cfg, allow_config_change)
    distributed.barrier(n_ranks)
    if writer:
        prepare_fold_dir(run, resume, overwrite)
        save_config(cfg, run.config)
        env = env_record(cfg, device, command)
        env.update(processes=n_ranks, sync_bn=sync_bn)
        write_text(run.env, json.dumps(env, indent=1))
        _log_to_fold(run.text_log)
        log.info("[TRAIN] %s fold %d -> %s%s", view, fold, run.root, " (resumed)" * resume)
    distributed.barrier(n_ranks)

    paddle.seed(tr["seed"])
    net = build_net(cfg)
    if sync_bn:
        net = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    # DataParallel averages the gradients over the ranks in backward(); `net` stays the plain
    # network whose state is saved and validated
    model = paddle.DataParallel(net) if n_ranks > 1 else net
    loss_fn = build_loss(cfg["loss"])
    optimizer = paddle.optimizer.AdamW(learning_rate=tr["lr"], parameters=net.parameters(),
                                       weight_decay=tr["weight_decay"])
    steps_per_epoch = tr["iters_per_epoch"] or max(1, math.ceil(len(train_idx) / batch))
    total_steps = steps_per_epoch * tr["epochs"]
    warmup = min(steps_per_epoch, max(1, total_steps // 20))

    start_epoch, best = 0, {"val_mean_error_mm": math.inf, "epoch": -1}
    select = open_select_dataset(cfg, view) if cfg["data"]["select_source"] else None
    log_rows: list[dict] = []
    if resume and run.last_opt.exists():
        state = load_checkpoint(run.last_opt)
        net.set_state_dict(load_checkpoint(run.last))
        optimizer.set_state_dict(state["optimizer"])
        start_epoch, best = int(state["epoch"]) + 1, state["best"]
        log_rows = [r for r in read_train_log(run.log) if r["epoch"] < start_epoch]
        log.info("[TRAIN] resuming %s at epoch %d", run.root, start_epoch + 1)

    log.info("[TRAIN] %s fold %d/%d: %d training, %d validation cases, %d epochs x %d steps%s",
             view, fold, tr["folds"], len(train_idx), len(val_idx), tr["epochs"], steps_per_epoch,
             f", {n_ranks} processes x {share.stop - share.start} cases per step"
             + (" (SyncBatchNorm)" if sync_bn else "") if n_ranks > 1 else "")
    model.train()
    for epoch in range(start_epoch, tr["epochs"]):
        t0 = time.time()
        rng = np.random.default_rng([tr["seed"], fold, epoch])
        sigma = _sigma_mm(cfg, epoch)
        order = np.concatenate([rng.permutation(train_idx)
                                for _ in range(math.ceil(steps_per_epoch * batch / len(train_idx)))])
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}",
                   disable=not (progress and writer), leave=False)
        for step in bar:
            lr = lr_at(epoch * steps_per_epoch + step, total_steps, tr["lr"], warmup)
            optimizer.set_lr(lr)
            positions = range(step * batch, (step + 1) * batch)[share]
            images, targets = training_batch(
                dataset, order[positions.start:positions.stop],
                sample_rngs(tr["seed"], fold, epoch, step, positions), cfg, sigma)
            loss = supervised_loss(loss_fn, model(paddle.to_tensor(images)),
                                   paddle.to_tensor(targets))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        distributed.average_buffers(net, n_ranks)
        train_loss = distributed.sum_across(float(np.mean(losses)), n_ranks) / n_ranks
        # the ranks validate round-robin shares of the validation cases, then gather them all
        val_share = val_idx[rank::n_ranks]
        val_loss, preds = validate(net, loss_fn, dataset, val_share, cfg, sigma)
        val_loss = distributed.sum_across(val_loss * len(val_share) if len(val_share) else 0.0,
                                          n_ranks) / len(val_idx) if len(val_idx) else math.nan
        preds = distributed.gather_interleaved(preds, n_ranks)
        errors = np.array([p["error_mm"] for p in preds if not p["negative"]])
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
               "val_mean_error_mm": float(errors.mean()) if errors.size else math.nan,
               "val_median_error_mm": float(np.median(errors)) if errors.size else math.nan,
               "seconds": time.time() - t0,
               **level_medians(preds, _levels(cfg))}
        if select is not None:
            row.update(select_scores(net, loss_fn, select, cfg, sigma, rank, n_ranks))
        log_rows.append(row)
        log.info("[TRAIN] %s fold %d epoch %d/%d, loss %.4f, lr %.2g | [VAL] loss %.4f, error "
                 "mean %.2f mm, median %.2f mm | %.0f s", view, fold, epoch + 1, tr["epochs"],
                 row["train_loss"], lr, val_loss, row["val_mean_error_mm"],
                 row["val_median_error_mm"], row["seconds"])
        if select is not None:
            log.info("[SELECT] %s: error mean %.2f mm, median %.2f mm, %.0f %% within 10 mm",
                     cfg["data"]["select_source"], row["select_mean_error_mm"],
                     row["select_median_error_mm"], 100 * row["select_within_10mm"])
        # an epoch without a finite error (no positive validation case) still counts as the best
        # so far, so a model is always saved
        score = row["val_mean_error_mm"] if errors.size else -math.inf
        if select is not None:
            score = row["select_mean_error_mm"]
        improved = score < best.get("score", best["val_mean_error_mm"]) or best["epoch"] < 0
        if improved:
            best = {"score": score, "val_mean_error_mm": row["val_mean_error_mm"], "epoch": epoch}
        if not writer:
            continue
        if improved:
            _save(net.state_dict(), run.best)
            write_table(run.val_predictions, preds, list(preds[0]) if preds else ["name"])
        _save(net.state_dict(), run.last)
        _save({"optimizer": optimizer.state_dict(), "epoch": epoch, "best": best}, run.last_opt)
        write_table(run.log, log_rows, log_columns(_levels(cfg), select is not None))
        plot_curves(log_rows, run.curves, f"{cfg['experiment']} {view} fold {fold}")
    distributed.barrier(n_ranks)  # no rank returns before the run folder is complete
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


def run_training(config_path, fold: str | int | list[int] = "1", view: str | None = None,
                 experiment: str | None = None, opts: list[str] | None = None,
                 resume: bool = False, overwrite: bool = False, device: str = "auto",
                 command: str = "", parallel: int = 1,
                 allow_config_change: bool = False) -> list[dict]:
    """What ``tools/train.py`` does: resolve the config, then train the asked folds and views.

    ``view="both"`` trains two single-view nets (frontal, then sagittal) whose row profiles
    evaluation fuses; ``fold`` (one fold, a list, or ``"all"`` = folds 1..k) are trained in turn,
    or ``parallel`` of them side by side (:func:`train_side_by_side`).
    """
    from l3loc.cli import parse_folds, progress_enabled, resolve_device
    from l3loc.config import VIEWS, load_config

    cfg = load_config(config_path, opts)
    cfg["experiment"] = experiment or Path(config_path).stem
    view = view or cfg["train"]["view"]
    if view not in VIEWS:
        raise InputError("--view", f"unknown view {view!r}: expected one of {VIEWS}")
    k = cfg["train"]["folds"]
    folds = list(range(1, k + 1)) if fold == "all" else parse_folds(
        [str(f) for f in (fold if isinstance(fold, (list, tuple)) else [fold])])
    if folds is None or not all(1 <= f <= k for f in folds):
        raise InputError("--fold", f"folds must be in 1..{k} (1-based) or all, got {fold}")
    check_components(cfg, config_path)
    device = resolve_device(device)
    views = ("frontal", "sagittal") if view == "both" else (view,)
    jobs = [(v, f) for v in views for f in folds]
    if parallel > 1 and len(jobs) > 1:
        results = train_side_by_side(cfg, config_path, jobs, opts or [], resume, overwrite, device,
                                     parallel, allow_config_change)
    else:
        results = [train_fold(cfg, v, f, resume=resume, overwrite=overwrite, device=device,
                              command=command, progress=progress_enabled(),
                              allow_config_change=allow_config_change) for v, f in jobs]
    for r in results:
        log.info("[TRAIN] done: %s fold %d, best epoch %d, validation mean error %.2f mm -> %s",
                 r["view"], r["fold"], r["best_epoch"], r["val_mean_error_mm"], r["run"])
    return results


def _summary(cfg: dict, view: str, fold: int) -> dict:
    """The summary :func:`train_fold` returns, read back from a finished fold's log."""
    run = FoldRun.of(cfg, view, fold)
    key = "select_mean_error_mm" if cfg["data"]["select_source"] else "val_mean_error_mm"
    rows = [r for r in read_train_log(run.log) if math.isfinite(r[key])]
    best = min(rows, key=lambda r: r[key], default=None)
    return {"view": view, "fold": fold, "best_epoch": best["epoch"] + 1 if best else 0,
            "val_mean_error_mm": best["val_mean_error_mm"] if best else math.nan,
            "run": str(run.root)}


def train_side_by_side(cfg: dict, config_path, jobs: list[tuple[str, int]], opts: list[str],
                       resume: bool, overwrite: bool, device: str, parallel: int,
                       allow_config_change: bool = False) -> list[dict]:
    """Independent fold/view trainings, ``parallel`` at a time, each a ``l3loc train`` process
    of its own fold folder (so never two writers in one folder); on GPUs, process ``s`` of the
    ``parallel`` slots uses ``gpu:(s mod GPUs)``. Each one's output goes to
    ``work/<experiment>/logs/<view>_fold_<K>.log``.

    The caches and splits.json are made here first, and every fold folder is checked, so the
    processes only read shared files and a refusal comes before anything starts.

    Raises:
        InputError: under paddle.distributed.launch (one or the other); a training that failed
            (naming its log).
    """
    import paddle

    if distributed.world()[1] > 1:
        raise InputError("--parallel", "not under paddle.distributed.launch: use one or the other")
    for view in {v for v, _ in jobs}:
        names = open_cache(cfg, view).names
    load_or_create_splits(experiment_dir(cfg) / "splits.json", names, cfg["train"]["folds"],
                          cfg["train"]["seed"])
    for v, f in jobs:
        prepare_fold_dir(FoldRun.of(cfg, v, f), resume, overwrite, False, cfg, allow_config_change)
    logs = experiment_dir(cfg) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    gpus = paddle.device.cuda.device_count() if device.startswith("gpu") else 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}
    if not gpus:  # the processes share the CPU cores instead of each taking them all
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    pending, running, failed = list(jobs), {}, []
    while pending or running:
        free = [s for s in range(parallel) if s not in running]
        if pending and free:
            (v, f), slot = pending.pop(0), free[0]
            cmd = [sys.executable, "-m", "l3loc", "train", "--config", str(config_path),
                   "--fold", str(f), "--view", v, "--experiment", cfg["experiment"],
                   "--device", f"gpu:{slot % gpus}" if gpus else device, "--opts", *opts]
            cmd += (["--resume"] * resume + ["--overwrite"] * overwrite
                    + ["--allow-config-change"] * allow_config_change)
            log_path = logs / f"{v}_fold_{f}.log"
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(f"$ {' '.join(cmd)}\n")
                fh.flush()
                running[slot] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                                  env=env), v, f, log_path)
            log.info("[TRAIN] started %s fold %d (%s) -> %s", v, f, cmd[cmd.index("--device") + 1],
                     log_path)
            continue
        time.sleep(0.5)
        for slot, (proc, v, f, log_path) in list(running.items()):
            if proc.poll() is not None:
                del running[slot]
                if proc.returncode:
                    failed.append(f"{log_path} (exit status {proc.returncode})")
                log.info("[TRAIN] %s fold %d finished, exit status %d", v, f, proc.returncode)
    if failed:
        raise InputError("--parallel", "training failed, see " + ", ".join(failed))
    return [_summary(cfg, v, f) for v, f in jobs]
