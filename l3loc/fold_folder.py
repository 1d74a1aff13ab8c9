"""A fold's run folder as training writes it: refusing to clobber a finished or running fold,
refusing a resumed fold whose config changed, ``env.json``, ``train_log.csv``'s columns,
``curves.png``, the checkpoints and ``train.log``. Where the files are is
:class:`l3loc.runs.FoldRun`'s."""
from __future__ import annotations

import logging
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

import l3loc
from l3loc.atomic import atomic_path
from l3loc.errors import InputError
from l3loc.report import pyplot
from l3loc.runs import FoldRun

log = logging.getLogger("l3loc")

SELECT_COLUMNS = ("select_mean_error_mm", "select_median_error_mm", "select_within_10mm")
LOG_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_mean_error_mm",
               "val_median_error_mm", "seconds")


def log_columns(levels: Sequence[str], select: bool = False) -> tuple[str, ...]:
    """Columns of ``train_log.csv``: ``LOG_COLUMNS``, then each level's (other than L3) median
    validation error for a model with level channels, then the selection set's figures when
    the best epoch is chosen on one (``data.select_source``)."""
    return (LOG_COLUMNS + tuple(f"val_median_error_mm_{k}" for k in levels if k != "L3")
            + (SELECT_COLUMNS if select else ()))


def plot_curves(log_rows: list[dict], path: Path, title: str) -> None:
    """Loss and validation error per epoch, side by side."""
    plt = pyplot()
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


def save_state(obj, path: Path) -> None:
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


def log_to_fold(path: Path) -> None:
    """Also write the training log (INFO and up) to ``path`` in the fold folder, so the run
    documents how it went; :func:`train_fold` removes the handler when the fold ends."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.l3loc_fold_log = True
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:  # the file gets INFO even if the console does not
        log.setLevel(logging.INFO)
