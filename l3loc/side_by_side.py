"""Independent fold/view trainings side by side (``l3loc train --parallel N``), each a process of
its own in its own fold folder."""
from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time

from l3loc import distributed
from l3loc.cache import open_cache
from l3loc.errors import InputError
from l3loc.fold_folder import prepare_fold_dir
from l3loc.runs import FoldRun, experiment_dir, read_train_log
from l3loc.splits import dataset_groups, load_or_create_splits

log = logging.getLogger("l3loc")


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
                          cfg["train"]["seed"], dataset_groups(cfg["data"]["source"], names))
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
