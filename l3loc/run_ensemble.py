"""Pool the folds of runs trained apart into one ensemble (maps averaged, fold claims on).

Two lines of nets trained apart fail on different scans: on real CT the fine-tuning chain
(``ft26``) and a model trained from random weights (``fresh26``) each read one of three real scans
a vertebra off, not the same one (benchmarks/README.md, generation 26). Pooled, the mean of their
maps is the decision and every member whose own sequence claims L3 on another vertebra turns the
row ``ambiguous`` (``l3loc.decode.other_vertebra_claims``): their disagreement becomes an
abstention instead of a confident wrong level. Unlike ``l3loc average`` (one net per fold, the
mean of the weights, for rounds from one starting point), the pooled nets stay separate nets, so
any runs of the same network, preprocessing and labels pool.

    l3loc ensemble --out work/both26 --view frontal work/ft26 work/fresh26
    l3loc calibrate --experiment work/both26 --data <fresh labelled phantoms>

Writes ``<out>/<view>/fold_<N>/`` (``best.pdparams`` and ``config.yaml`` copied, N = 1.. over the
runs' folds in the order given) and ``<out>/ensembled_from.json`` (for each pooled fold its source
folder and the sha256 of its weights). No ``splits.json``: the runs were trained and held out on
different cases, so a pooled ensemble has no k-fold of its own; its ``not_found`` threshold is
chosen on fresh labelled data with ``l3loc calibrate`` (``l3loc.calibration``).

:func:`compose_refined` (``l3loc compose``) joins two models by view instead: one model's frontal
nets and threshold count, another's sagittal nets place the rows (the ``refined`` decision,
``l3loc.placement``), as the shipped model was built.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from l3loc.atomic import atomic_path, write_text
from l3loc.config import load_shared_config
from l3loc.errors import InputError
from l3loc.runs import WEIGHTS, available_folds, sha256

ENSEMBLED_FROM = "ensembled_from.json"


def _copy_fold(src: Path, dest: Path) -> None:
    """``src`` (a run's fold or an exported one) as a run's fold in ``dest``: ``best.pdparams``
    copied, or rebuilt from an export's tensors (``l3loc.export.fold_weights`` checks the net and
    the export agree on an image), and its ``config.yaml``."""
    dest.mkdir(parents=True)
    with atomic_path(dest / "config.yaml") as tmp:
        shutil.copyfile(src / "config.yaml", tmp)
    if (src / WEIGHTS).is_file():
        with atomic_path(dest / WEIGHTS) as tmp:
            shutil.copyfile(src / WEIGHTS, tmp)
        return
    from l3loc.config import load_config
    from l3loc.export import fold_weights
    from l3loc.fold_folder import save_state
    from l3loc.models import build_net

    net = build_net(load_config(src / "config.yaml"))
    fold_weights(src, net)
    save_state(net.state_dict(), dest / WEIGHTS)


def ensemble_runs(runs: Sequence[Path], out: Path, view: str, overwrite: bool = False) -> list[Path]:
    """Copy every trained ``view`` fold of ``runs`` into ``out/<view>/fold_1..N``; returns the
    source fold folders in the order pooled. Refuses fewer than two runs, a run without a trained
    ``view`` fold, folds that differ in preprocessing, network or labels, an output that is one
    of the runs, and an output that already holds ``view`` folds (unless ``overwrite``)."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise InputError("runs", "give two or more run folders to pool")
    if any(run.resolve() == out.resolve() for run in runs):
        raise InputError(out, "is one of the pooled runs: write the pool to a folder of its own "
                              "(its folds would be replaced by copies of themselves and the others)")
    sources = []
    for run in runs:
        folds = available_folds(run, view)
        if not folds:
            raise InputError(run, f"no trained {view} fold (expected {view}/fold_<K>/{WEIGHTS})")
        sources += [run / view / f"fold_{k}" for k in folds]
    load_shared_config([d / "config.yaml" for d in sources], str(sources[0]),
                       "only nets of the same network, preprocessing and labels pool")
    if available_folds(out, view) and not overwrite:
        raise InputError(out / view, "already holds folds; pass --overwrite to replace them")
    if (out / view).is_dir():
        shutil.rmtree(out / view)
    for n, src in enumerate(sources, start=1):
        _copy_fold(src, out / view / f"fold_{n}")
    write_text(out / ENSEMBLED_FROM, json.dumps(
        {"view": view, "folds": [{"fold": n, "from": str(src), "sha256": sha256(src / WEIGHTS)}
                                 for n, src in enumerate(sources, start=1)]}, indent=1))
    return sources


COMPOSED_FROM = "composed_from.json"
#: How a composed model's threshold rule ends: the refined view decides with the frontal one's.
REFINED_RULE = "refined decides as its frontal nets do"


def compose_refined(counting: Path, placing: Path, out: Path, overwrite: bool = False) -> dict:
    """A ``refined`` model (``l3loc.placement``) from two models: ``counting``'s frontal folds and
    its evaluated frontal threshold decide, ``placing``'s sagittal folds place the rows. Each may
    be a run folder or an exported / shipped model (exported folds are rebuilt as run folds, so
    the result evaluates, exports and ships like any run). Writes ``out/<view>/fold_<N>/``,
    ``out/eval/decision.json`` (frontal and refined: the counting model's frontal threshold; best
    view ``refined``) and ``out/composed_from.json``; returns that record.

    Raises:
        InputError: no frontal folds or no evaluated frontal threshold in ``counting``, no
            sagittal folds in ``placing``, nets of other labels or pixel sizes, an output that
            is one of the inputs, or an output that holds folds (unless ``overwrite``).
    """
    from l3loc.config import load_config
    from l3loc.runs import DECISION, evaluated_entry, model_folds, read_decision, weight_hashes, write_decision

    counting, placing, out = Path(counting), Path(placing), Path(out)
    if out.resolve() in (counting.resolve(), placing.resolve()):
        raise InputError(out, "is one of the composed models: write the composition to a folder of its own")
    views = {"frontal": (counting, model_folds(counting, "frontal")),
             "sagittal": (placing, model_folds(placing, "sagittal"))}
    for view, (root, folds) in views.items():
        if not folds:
            raise InputError(root, f"no {view} fold (expected {view}/fold_<K>/ with {WEIGHTS} or an export)")
    decision = read_decision(counting) or {}
    entry = evaluated_entry(decision, "frontal")
    if entry is None:
        raise InputError(counting, "has no evaluated frontal threshold: run `l3loc eval` (or "
                                   "`l3loc calibrate`) on it first")
    frontal, sagittal = (load_config(root / v / f"fold_{folds[0]}" / "config.yaml")
                         for v, (root, folds) in views.items())
    same = {"label": frontal["label"] == sagittal["label"],
            "preprocess pixel size": frontal["preprocess"]["spacing_mm"] == sagittal["preprocess"]["spacing_mm"]}
    for what, equal in same.items():
        if not equal:
            raise InputError(placing, f"its sagittal nets' {what} differs from {counting}'s frontal "
                                      "nets': the placing view must locate the same levels on the same rows")
    if any(model_folds(out, v) for v in views) and not overwrite:
        raise InputError(out, "already holds folds; pass --overwrite to replace them")
    if (out / "eval" / DECISION).exists() and not overwrite:
        raise InputError(out / "eval" / DECISION, "exists; pass --overwrite to replace it")
    record = {"counting": str(counting), "placing": str(placing), "folds": []}
    for view, (root, folds) in views.items():
        if (out / view).is_dir():
            shutil.rmtree(out / view)
        for n, k in enumerate(folds, start=1):
            src, dest = root / view / f"fold_{k}", out / view / f"fold_{n}"
            _copy_fold(src, dest)
            record["folds"].append({"fold": f"{view}/fold_{n}", "from": str(src)})
    method = f"{counting.name}'s {entry.get('threshold_method', 'evaluation')}"
    if REFINED_RULE not in method:   # (a refined model composed again already says it)
        method += f"; {REFINED_RULE}"
    chosen = {"threshold": float(entry["threshold"]), "threshold_method": method}
    (out / "eval").mkdir(parents=True, exist_ok=True)
    write_decision(out / "eval", {"frontal": chosen, "refined": chosen}, "refined",
                   decision.get("decoder", "profile"), weight_hashes(out))
    write_text(out / COMPOSED_FROM, json.dumps(record, indent=1))
    return record
