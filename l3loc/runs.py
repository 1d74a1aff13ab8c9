"""Run folders: their layout, discovery, splits, fold status and the evaluation's decision.

One experiment lives in ``work/<experiment>/``::

    splits.json                       the k folds of case names (l3loc.splits)
    <view>/fold_<K>/                  one trained fold (FoldRun): config.yaml, env.json,
                                      best.pdparams, last.pdparams, last.pdopt, train_log.csv,
                                      train.log, val_predictions.csv, curves.png
    eval/                             evaluation (l3loc.evaluate): human tables and plots, and
    eval/decision.json                what prediction uses: per view the not_found threshold,
                                      the decoder, the view evaluation found best, and the
                                      sha256 of the weights evaluated
    export/                           inference models (l3loc.export), with export.json and a
                                      copy of decision.json

Every other module asks this one where things are, so the layout is stated once.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from l3loc.atomic import write_text
from l3loc.errors import InputError
from l3loc.mip import VIEWS as NET_VIEWS

#: The decision made from both views' nets: their row profiles fused (evaluation, prediction,
#: export and decision.json all call it this; ``--view both`` of train and preprocess is another
#: thing: both nets, or both caches, made one after the other).
FUSED = "fused"
#: The decision the frontal nets make with its rows placed by the sagittal nets (the frontal
#: view counts the vertebrae, the sagittal view places them: l3loc.placement).
REFINED = "refined"
#: The views a decision can come from (``--view`` of eval, predict and export).
DECISION_VIEWS = NET_VIEWS + (FUSED, REFINED)
#: ``both`` meant the fused decision in decision.json and metadata.json written before l3loc 0.1
#: named it ``fused`` (the shipped models keep their files): read as ``fused``.
_OLD_FUSED = "both"

EXPORT_SUBDIR = "export"
#: the inference graph and parameters of one exported fold (paddle.jit.save)
EXPORT_GRAPH, EXPORT_PARAMS = "model.json", "model.pdiparams"
EXPORT_MANIFEST = "export.json"
DECISION = "decision.json"
WEIGHTS = "best.pdparams"

_FOLD_RE = re.compile(r"^fold_(\d+)$")


@dataclass(frozen=True)
class FoldRun:
    """Where one fold of one view lives."""

    root: Path

    @classmethod
    def of(cls, cfg: dict, view: str, fold: int) -> "FoldRun":
        return cls(experiment_dir(cfg) / view / f"fold_{fold}")

    log = property(lambda self: self.root / "train_log.csv")
    text_log = property(lambda self: self.root / "train.log")
    best = property(lambda self: self.root / WEIGHTS)
    last = property(lambda self: self.root / "last.pdparams")
    last_opt = property(lambda self: self.root / "last.pdopt")
    val_predictions = property(lambda self: self.root / "val_predictions.csv")
    curves = property(lambda self: self.root / "curves.png")
    config = property(lambda self: self.root / "config.yaml")
    env = property(lambda self: self.root / "env.json")


def experiment_dir(cfg: dict) -> Path:
    return Path(cfg["work_dir"]) / cfg["experiment"]


def resolve_run_dir(experiment: str | os.PathLike, work_dir: str | os.PathLike = "work") -> Path:
    """An experiment name (``work/<name>``) or a folder path -> the existing folder."""
    p = Path(experiment)
    for candidate in (p, Path(work_dir) / p):
        if candidate.is_dir():
            return candidate
    raise InputError(experiment, f"no such experiment folder (looked for {p} and "
                                 f"{Path(work_dir) / p})")


def latest_experiment(work_dir: str | Path = "work") -> Path:
    """The experiment folder under ``work_dir`` (one holding ``splits.json``) trained last.

    "Last" = the newest modification time among the folder, its ``splits.json`` and its folds'
    ``train_log.csv`` (a folder's own time does not change when a file deep inside it does).

    Raises:
        InputError: no experiment under ``work_dir``.
    """
    work_dir = Path(work_dir)
    candidates = [p.parent for p in work_dir.glob("*/splits.json")] if work_dir.is_dir() else []
    if not candidates:
        raise InputError(work_dir, "no experiment folder with a splits.json: train first "
                                   "(python tools/train.py) or give --experiment")

    def newest(exp: Path) -> float:
        paths = [exp, exp / "splits.json", *exp.glob("*/fold_*/train_log.csv")]
        return max(p.stat().st_mtime for p in paths)

    return max(candidates, key=newest)


def read_splits(exp_dir: Path) -> list[list[str]]:
    """The experiment's folds of case names (``splits.json``, see ``l3loc.splits``)."""
    path = Path(exp_dir) / "splits.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        folds = doc["folds"]
        if not isinstance(folds, list) or not all(isinstance(n, str) for f in folds for n in f):
            raise ValueError("'folds' must be lists of names")
    except FileNotFoundError:
        raise InputError(path, "missing: not an experiment folder (train first)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a valid splits file ({exc})") from None
    return [list(f) for f in folds]


def fold_dirs(root: Path, view: str, filename: str = WEIGHTS,
              folds: Sequence[int] | None = None) -> list[tuple[int, Path]]:
    """(fold, folder) of every ``<root>/<view>/fold_<K>`` holding ``filename`` and a
    ``config.yaml`` (the one scan of fold folders), by fold; ``folds`` narrows it."""
    vdir = Path(root) / view
    out = []
    for d in (vdir.iterdir() if vdir.is_dir() else ()):
        m = _FOLD_RE.match(d.name)
        if (m and (folds is None or int(m.group(1)) in folds) and (d / filename).is_file()
                and (d / "config.yaml").is_file()):
            out.append((int(m.group(1)), d))
    return sorted(out)


def available_folds(root: Path, view: str, filename: str = WEIGHTS) -> list[int]:
    """1-based folds of ``view`` under ``root`` that hold ``filename``, ascending."""
    return [k for k, _ in fold_dirs(root, view, filename)]


def trained_folds(exp_dir: Path, views: Sequence[str] = NET_VIEWS,
                  folds: Sequence[int] | None = None) -> list[tuple[str, int, Path]]:
    """(view, fold, fold folder) of every fold with a ``best.pdparams`` and a ``config.yaml``."""
    return [(v, k, d) for v in sorted(views) for k, d in fold_dirs(exp_dir, v, WEIGHTS, folds)]


def model_folds(root: Path, view: str) -> list[int]:
    """1-based folds of ``view`` under ``root`` a model can be loaded from, ascending: trained
    (``best.pdparams``, a run folder) or exported (``model.json``, an export or shipped model)."""
    return sorted(set(available_folds(root, view, WEIGHTS))
                  | set(available_folds(root, view, EXPORT_GRAPH)))


def nets_of(view: str) -> list[str]:
    """The views whose nets a decision view runs: both for ``fused`` and ``refined``."""
    return list(NET_VIEWS) if view in (FUSED, REFINED) else [view]


def trained_views(root: Path) -> list[str]:
    """Views of ``root`` with at least one usable fold (trained or exported)."""
    return [v for v in NET_VIEWS if model_folds(root, v)]


def read_train_log(path: Path) -> list[dict]:
    """The rows of a fold's ``train_log.csv`` (epoch as int, the rest as floats); [] if none."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def epochs_done(fold_dir: Path) -> tuple[int, int]:
    """(epochs logged, epochs configured) of a fold folder; fewer logged = still training or
    stopped, so its best.pdparams is not final. (0, 0) when unreadable."""
    run = FoldRun(Path(fold_dir))
    try:
        with open(run.config, encoding="utf-8") as fh:
            epochs = int(yaml.safe_load(fh)["train"]["epochs"])
        return len(read_train_log(run.log)), epochs
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return 0, 0


# ----------------------------------------------------------------------------- provenance


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weight_hashes(root: Path, views: Sequence[str] = NET_VIEWS) -> dict[str, str]:
    """``{"<view>/fold_<K>": sha256 of its best.pdparams}`` of every trained fold of ``root``."""
    return {f"{v}/fold_{k}": sha256(d / WEIGHTS) for v, k, d in trained_folds(root, views)}


def stale_folds(recorded: dict[str, str], run_dir: Path) -> list[str]:
    """Folds of ``recorded`` (from :func:`weight_hashes`) whose weights in ``run_dir`` are now
    different or gone."""
    out = []
    for key, digest in sorted(recorded.items()):
        path = Path(run_dir) / key / WEIGHTS
        if not path.is_file() or sha256(path) != digest:
            out.append(key)
    return out


# ----------------------------------------------------------------------------- the decision


def write_decision(out_dir: Path, views: dict[str, dict], best_view: str | None, decoder: str,
                   weights: dict[str, str]) -> Path:
    """Evaluation's decision as ``out_dir/decision.json`` (what prediction and export read).

    Args:
        views: per view (``frontal``, ``sagittal``, ``fused``) ``{"threshold", "threshold_method"}``.
        best_view: the view with the lowest mean error, None if none.
        decoder: the decoder evaluation measured.
        weights: :func:`weight_hashes` of the folds evaluated.
    """
    doc = {"best_view": best_view, "decoder": decoder, "views": views, "weights": weights}
    path = Path(out_dir) / DECISION
    write_text(path, json.dumps(doc, indent=1))
    return path


def read_decision(root: Path) -> dict | None:
    """The decision of a run folder (``eval/decision.json``) or an export (``decision.json``);
    None when there is none.

    Raises:
        InputError: the file exists but is not a decision.
    """
    root = Path(root)
    if not (root / "eval" / DECISION).is_file() and (root / "eval" / "summary.csv").is_file():
        return _decision_from_summary(root / "eval" / "summary.csv")
    for path in (root / "eval" / DECISION, root / DECISION):
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(doc.get("views"), dict):
                    raise ValueError("no 'views' mapping")
            except (OSError, ValueError, AttributeError) as exc:
                raise InputError(path, f"not a valid decision file ({exc})") from None
            doc["views"] = {decision_view(v): e for v, e in doc["views"].items()}
            doc["best_view"] = decision_view(doc.get("best_view"))
            return doc
    return None


def decision_view(name: str | None) -> str | None:
    """A view name read from a stored file, in today's vocabulary (``both`` -> ``fused``)."""
    return FUSED if name == _OLD_FUSED else name


def _decision_from_summary(path: Path) -> dict | None:
    """The decision of a run evaluated before ``decision.json`` existed, from its
    ``eval/summary.csv`` (one row per view: view, mean_mm, threshold), so runs evaluated (and
    models shipped) earlier keep their threshold and view; evaluating again writes the file."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if not {"view", "mean_mm", "threshold"} <= set(df.columns):
        return None
    mean = pd.to_numeric(df["mean_mm"], errors="coerce")
    views = {v: {"threshold": float(t)}
             for v, t in zip(df["view"], pd.to_numeric(df["threshold"], errors="coerce"))
             if t == t}
    best = str(df.loc[mean.idxmin(), "view"]) if mean.notna().any() else None
    return {"best_view": best, "decoder": None, "views": views, "weights": {}}


def default_view(root: Path) -> str:
    """The view to run when none is asked: the one evaluation found best (``decision.json``),
    else ``fused`` when both are trained, else the one that is."""
    views = trained_views(root)
    if not views:
        raise InputError(root, "no trained or exported folds (expected <view>/fold_<K>/"
                               "best.pdparams or model.json)")
    best = (read_decision(root) or {}).get("best_view")
    if best in views or (best in (FUSED, REFINED) and len(views) == 2):
        return best
    return FUSED if len(views) == 2 else views[0]


def evaluated_entry(decision: dict | None, view: str) -> dict | None:
    """The entry of ``decision`` (a run's ``eval/decision.json``, or None) for ``view`` (one of
    DECISION_VIEWS) when evaluation chose it a threshold (``threshold``, ``threshold_method``), else
    None. ``refined`` decides as the frontal view does (only its rows move): the frontal entry."""
    view = "frontal" if view == REFINED else view
    entry = ((decision or {}).get("views") or {}).get(view) or {}
    return entry if isinstance(entry.get("threshold"), (int, float)) else None


def evaluated_threshold(root: Path, view: str) -> float | None:
    """The ``not_found`` threshold evaluation chose for ``view`` (one of DECISION_VIEWS), or None."""
    entry = evaluated_entry(read_decision(root), view)
    return None if entry is None else float(entry["threshold"])
