"""Average the weights of several fine-tuning rounds fold by fold (a "model soup").

Rounds fine-tuned from the same starting weights on different phantom draws read real CT
differently by as much as a vertebra on single folds (benchmarks/README.md, generation 26); the
uniform average of their parameters keeps one net per fold (no extra inference time) and averages
that round-to-round variation out. Only rounds that share a starting point average into a working
net: nets trained apart lie in different basins and their average is not a net at all, which a
k-fold evaluation of the result shows at once.

    l3loc average --out work/soup3 --view frontal work/ft25b work/ft26 work/ft26b

Writes ``<out>/<view>/fold_<K>/best.pdparams`` (every parameter and buffer the mean of the
rounds' fold-K ``best.pdparams``), the first round's ``config.yaml``, and ``averaged_from.json``
(the rounds and the sha256 of each weight file); ``<out>/splits.json`` is the first round's,
so ``l3loc eval --experiment <out>`` scores the average on the first round's held-out cases.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from l3loc.atomic import atomic_path, write_text
from l3loc.config import load_shared_config, save_config
from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.runs import WEIGHTS, available_folds, sha256

AVERAGED_FROM = "averaged_from.json"


def average_state_dicts(states: Sequence[dict], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The uniform mean of state dicts with the same keys and shapes (float arrays averaged;
    any other dtype must be equal in every one). ``names`` name the states in errors."""
    keys = list(states[0])
    for state, name in zip(states[1:], names[1:]):
        if list(state) != keys:
            raise InputError(name, f"holds other parameters than {names[0]}: not the same network")
    out = {}
    for key in keys:
        arrays = [s[key].numpy() for s in states]   # load_checkpoint gives Paddle tensors
        if len({a.shape for a in arrays}) != 1:
            raise InputError(names[0], f"parameter {key} has shapes {[a.shape for a in arrays]} "
                                       "across the rounds: not the same network")
        if np.issubdtype(arrays[0].dtype, np.floating):
            out[key] = np.mean(np.stack(arrays), axis=0).astype(arrays[0].dtype)
        elif all(np.array_equal(arrays[0], a) for a in arrays[1:]):
            out[key] = arrays[0]
        else:
            raise InputError(names[0], f"non-float buffer {key} differs across the rounds")
    return out


def average_runs(runs: Sequence[Path], out: Path, view: str, overwrite: bool = False) -> list[int]:
    """Average the rounds' ``best.pdparams`` of every fold of ``view`` they all have; returns
    the folds written. Refuses fewer than two rounds, rounds whose folds differ in
    preprocessing, network or labels, and an existing output fold without ``overwrite``."""
    import paddle

    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise InputError("runs", "give two or more run folders to average")
    folds = sorted(set.intersection(*(set(available_folds(r, view)) for r in runs)))
    if not folds:
        raise InputError(", ".join(map(str, runs)), f"no {view} fold trained in every run")
    for k in folds:
        target = out / view / f"fold_{k}" / WEIGHTS
        if target.exists() and not overwrite:
            raise InputError(target, "exists; pass --overwrite to replace it")
    for k in folds:
        dirs = [r / view / f"fold_{k}" for r in runs]
        cfg = load_shared_config([d / "config.yaml" for d in dirs], str(dirs[0]),
                                 "only rounds of the same network and preprocessing average")
        weights = [d / WEIGHTS for d in dirs]
        mean = average_state_dicts([load_checkpoint(w) for w in weights], [str(w) for w in weights])
        fold_out = out / view / f"fold_{k}"
        fold_out.mkdir(parents=True, exist_ok=True)
        with atomic_path(fold_out / WEIGHTS) as tmp:
            paddle.save({key: paddle.to_tensor(a) for key, a in mean.items()}, str(tmp))
        save_config(cfg, fold_out / "config.yaml")
        write_text(fold_out / AVERAGED_FROM, json.dumps({"rounds": [str(w) for w in weights],
                                                        "sha256": [sha256(w) for w in weights]},
                                                       indent=1))
    splits = runs[0] / "splits.json"
    if splits.is_file():
        with atomic_path(out / "splits.json") as tmp:
            shutil.copyfile(splits, tmp)
    return folds
