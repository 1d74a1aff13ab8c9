"""Train one fold of one view, validate it, and leave a self-contained, resumable run folder.

Run folder (``work/<experiment>/<view>/fold_<K>/``; the view level lets one experiment hold the
frontal and sagittal nets that evaluation fuses):

- ``train_log.csv``: epoch, lr, train_loss, val_loss, val_mean_error_mm, val_median_error_mm,
  seconds (one row per finished epoch);
  with ``data.select_source`` also the selection set's mean and median L3 error and fraction
  within 10 mm;
- ``best.pdparams`` (lowest validation mean error, or lowest mean error on the selection set
  when there is one: see :func:`l3loc.validation.open_select_dataset`), ``last.pdparams`` + ``last.pdopt`` (optimizer
  state, epoch and best-so-far, for ``--resume``);
- ``val_predictions.csv`` of the best epoch, ``curves.png``, the resolved ``config.yaml`` and
  ``env.json`` (versions, seed, device, command), ``train.log`` (the log of every session);
  the paths are :class:`l3loc.runs.FoldRun`'s.

``--resume`` continues from ``last`` with the fold's own config: a different one is refused
(naming the keys) unless allowed; only ``train.epochs`` may change.

``train.init_from`` (a run, an export or a shipped model) fine-tunes: the fold starts from that
model's ``<view>/fold_<K>`` weights instead of a random initialisation
(:func:`l3loc.export.fold_weights`); the optimizer, the schedule and the data are a new run's.

Determinism: the network is initialised after ``paddle.seed(seed)``; the data of epoch ``e`` are
drawn from ``numpy.random.default_rng([seed, fold, e])``, and the learning rate is a pure
function of the step. A run resumed from ``last`` therefore repeats the numbers of an
uninterrupted run.

The pieces: the batches (:mod:`l3loc.training_batches`), validation (:mod:`l3loc.validation`),
the fold folder's files and refusals (:mod:`l3loc.fold_folder`), several trainings side by side
(:mod:`l3loc.side_by_side`); this module runs the epochs.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from l3loc import distributed
from l3loc.atomic import write_table, write_text
from l3loc.cache import open_cache
from l3loc.config import save_config
from l3loc.errors import InputError
from l3loc.fold_folder import (env_record, log_columns, log_to_fold, plot_curves, prepare_fold_dir,
                               save_state)
from l3loc.io.checkpoint import load_checkpoint
from l3loc.runs import FoldRun, experiment_dir, read_train_log
from l3loc.side_by_side import train_side_by_side
from l3loc.splits import dataset_groups, fold_cases, load_or_create_splits
from l3loc.training_batches import cfg_levels, epoch_sigma_mm, sample_rngs, training_batch
from l3loc.validation import (level_medians, open_select_dataset, positive_errors, select_scores,
                              validate)

log = logging.getLogger("l3loc")

def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up then cosine decay to 1 % of ``base_lr``; a pure function of the step."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def eta_text(seconds: float) -> str:
    """``ETA 1 h 05 min`` / ``ETA 4 min`` / ``ETA 35 s``; ``done`` at zero."""
    if seconds <= 0:
        return "done"
    if seconds < 60:
        return f"ETA {seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"ETA {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"ETA {minutes} min"


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
                                           tr["folds"], tr["seed"],
                                           dataset_groups(cfg["data"]["source"], dataset.names))
        distributed.barrier(n_ranks)
    try:
        train_names, val_names = fold_cases(splits, fold)
    except ValueError as exc:
        raise InputError("--fold", str(exc)) from None
    index = {n: i for i, n in enumerate(dataset.names)}
    train_idx = np.array([index[n] for n in train_names])
    val_idx = np.array([index[n] for n in val_names])

    run = FoldRun.of(cfg, view, fold)
    paddle.seed(tr["seed"])
    net = build_net(cfg)
    # a fine-tuning's weights are read before the fold folder is touched: a bad init_from loses nothing
    init_dir = Path(tr["init_from"]) / view / f"fold_{fold}" if tr["init_from"] and not resume else None
    if init_dir is not None:
        from l3loc.export import fold_weights
        fold_weights(init_dir, net)
    # every rank checks (and refuses alike) before rank 0 deletes or writes anything
    prepare_fold_dir(run, resume, overwrite, False, cfg, allow_config_change)
    distributed.barrier(n_ranks)
    if writer:
        prepare_fold_dir(run, resume, overwrite)
        save_config(cfg, run.config)
        env = env_record(cfg, device, command)
        env.update(processes=n_ranks, sync_bn=sync_bn)
        write_text(run.env, json.dumps(env, indent=1))
        log_to_fold(run.text_log)
        log.info("[TRAIN] %s fold %d -> %s%s", view, fold, run.root, " (resumed)" * resume)
    distributed.barrier(n_ranks)

    if init_dir is not None and writer:
        log.info("[TRAIN] starting from the weights of %s", init_dir)
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
    session_start = time.time()
    for epoch in range(start_epoch, tr["epochs"]):
        t0 = time.time()
        rng = np.random.default_rng([tr["seed"], fold, epoch])
        sigma = epoch_sigma_mm(cfg, epoch)
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
        errors = positive_errors(preds)
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
               "val_mean_error_mm": float(errors.mean()) if errors.size else math.nan,
               "val_median_error_mm": float(np.median(errors)) if errors.size else math.nan,
               "seconds": time.time() - t0,
               **level_medians(preds, cfg_levels(cfg))}
        if select is not None:
            row.update(select_scores(net, loss_fn, select, cfg, sigma, rank, n_ranks))
        log_rows.append(row)
        # ETA from this session's mean epoch (validation included), in the log file too
        per_epoch = (time.time() - session_start) / (epoch + 1 - start_epoch)
        log.info("[TRAIN] %s fold %d epoch %d/%d, loss %.4f, lr %.2g | [VAL] loss %.4f, error "
                 "mean %.2f mm, median %.2f mm | %.0f s, %s", view, fold, epoch + 1, tr["epochs"],
                 row["train_loss"], lr, val_loss, row["val_mean_error_mm"],
                 row["val_median_error_mm"], row["seconds"],
                 eta_text(per_epoch * (tr["epochs"] - epoch - 1)))
        if select is not None:
            log.info("[SELECT] %s: error mean %.2f mm, median %.2f mm, %.0f %% within 10 mm",
                     cfg["data"]["select_source"], row["select_mean_error_mm"],
                     row["select_median_error_mm"], 100 * row["select_within_10mm"])
        # an epoch without a finite error (no positive validation case) still counts as the best
        # so far, so a model is always saved
        if select is not None:
            score = row["select_mean_error_mm"]
        else:
            score = row["val_mean_error_mm"] if errors.size else -math.inf
        improved = score < best.get("score", best["val_mean_error_mm"]) or best["epoch"] < 0
        if improved:
            best = {"score": score, "val_mean_error_mm": row["val_mean_error_mm"], "epoch": epoch}
        if not writer:
            continue
        if improved:
            save_state(net.state_dict(), run.best)
            write_table(run.val_predictions, preds, list(preds[0]) if preds else ["name"])
        save_state(net.state_dict(), run.last)
        save_state({"optimizer": optimizer.state_dict(), "epoch": epoch, "best": best}, run.last_opt)
        write_table(run.log, log_rows, log_columns(cfg_levels(cfg), select is not None))
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


