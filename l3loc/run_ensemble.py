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
        dest = out / view / f"fold_{n}"
        dest.mkdir(parents=True)
        for name in (WEIGHTS, "config.yaml"):
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(src / name, tmp)
    write_text(out / ENSEMBLED_FROM, json.dumps(
        {"view": view, "folds": [{"fold": n, "from": str(src), "sha256": sha256(src / WEIGHTS)}
                                 for n, src in enumerate(sources, start=1)]}, indent=1))
    return sources
