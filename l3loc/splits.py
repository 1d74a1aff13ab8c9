"""k-fold cross-validation splits over case names: made once with a fixed seed, saved, reused.

Every training run and every evaluation of a dataset reads the same ``splits.json``, so "fold 5"
always means the same validation cases (the nnU-Net habit). The reference notebook took
contiguous blocks of an unshuffled list (cases from one source cohort ended up in one fold) and
never saved them.

``splits.json``::

    {"k": 5, "seed": 0, "n_cases": 1000, "folds": [["case_0003", ...], ...]}

Folds are numbered from 1 as on the command line: ``--fold 5`` validates on ``folds[4]``.

Cases of one patient (one group: the same phantom rendered by several generators in a merged
dataset, ``l3loc.io.npz.CASE_GROUP``) go into one fold: a fold that validates on a patient whose
twin it trained on measures memory, not localisation.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from l3loc.atomic import write_text
from l3loc.errors import InputError


def make_splits(names: Sequence[str], k: int = 5, seed: int = 0,
                groups: Sequence[str] | None = None) -> list[list[str]]:
    """Split case names into ``k`` folds of near-equal size (sizes differ by at most 1).

    The names are sorted, then permuted with ``numpy.random.default_rng(seed)``, then dealt
    round-robin into folds; each fold is returned sorted. The result depends only on the set of
    names, ``k`` and ``seed``, not on the order the dataset lists its cases in.

    With ``groups`` (one per name), the sorted groups are permuted instead and each goes whole
    into the fold with the fewest cases so far (sizes then differ by at most the largest group).

    Raises:
        ValueError: duplicate names, ``k < 2``, fewer names (or groups) than folds, or a
            ``groups`` of another length.
    """
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"case names must be unique; repeated: {', '.join(dupes[:5])}")
    if int(k) != k or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if len(names) < k:
        raise ValueError(f"cannot make {k} folds from {len(names)} case(s)")
    if groups is not None:
        return _group_splits(names, [str(g) for g in groups], int(k), seed)
    order = np.random.default_rng(seed).permutation(len(names))
    ordered = sorted(names)
    shuffled = [ordered[i] for i in order]
    return [sorted(shuffled[f::k]) for f in range(int(k))]


def _group_splits(names: list[str], groups: list[str], k: int, seed: int) -> list[list[str]]:
    if len(groups) != len(names):
        raise ValueError(f"{len(groups)} groups for {len(names)} names")
    members: dict[str, list[str]] = {}
    for n, g in zip(names, groups):
        members.setdefault(g, []).append(n)
    if len(members) < k:
        raise ValueError(f"cannot make {k} folds from {len(members)} group(s)")
    ordered = sorted(members)
    folds: list[list[str]] = [[] for _ in range(k)]
    for i in np.random.default_rng(seed).permutation(len(ordered)):
        min(folds, key=len).extend(members[ordered[i]])   # the first of the smallest folds
    return [sorted(f) for f in folds]


def dataset_groups(source, names: Sequence[str]) -> list[str] | None:
    """The patient group of each of ``names`` when the dataset ``source`` records groups (a
    merged l3_dataset.npz), else None."""
    from l3loc.io.npz import read_case_groups

    groups = read_case_groups(source)
    return None if groups is None else [groups[n] for n in names]


def fold_cases(splits: Sequence[Sequence[str]], fold: int) -> tuple[list[str], list[str]]:
    """Training and validation names for 1-based ``fold``: validate on it, train on the others.

    Returns:
        ``(train_names, val_names)``, each sorted.

    Raises:
        ValueError: ``fold`` outside ``1..k`` (the message gives the valid range).
    """
    k = len(splits)
    if isinstance(fold, bool) or int(fold) != fold or not 1 <= fold <= k:
        raise ValueError(f"fold must be in 1..{k} (1-based), got {fold!r}")
    val = sorted(splits[fold - 1])
    train = sorted(n for i, f in enumerate(splits) if i != fold - 1 for n in f)
    return train, val


def load_or_create_splits(path: str | os.PathLike, names: Sequence[str], k: int = 5,
                          seed: int = 0, groups: Sequence[str] | None = None) -> list[list[str]]:
    """Read ``path`` if it exists and matches the dataset; otherwise make the splits and write it.

    The file is written once, atomically, and never rewritten: a changed dataset or ``k`` is an
    error rather than a silently different split (which would make old folds incomparable).

    Args:
        path: the dataset's ``splits.json``.
        names: every case name of the dataset.
        k: number of folds.
        seed: shuffling seed, used (and checked) only with ``k``.
        groups: one group per name (patients; see :func:`make_splits`), or None.

    Returns:
        The folds, ``k`` lists of names.

    Raises:
        InputError: the existing file is unreadable, or made for other names, another ``k`` or
            another seed, or puts one group into several folds (the message says what differs
            and to delete the file to re-split).
        ValueError: as ``make_splits``.
    """
    names = [str(n) for n in names]
    if not os.path.exists(path):
        splits = make_splits(names, k, seed, groups)
        doc = {"k": int(k), "seed": int(seed), "n_cases": len(names), "folds": splits}
        write_text(path, json.dumps(doc, indent=1) + "\n")
        return splits

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        saved_k, saved_seed, splits = int(doc["k"]), int(doc["seed"]), doc["folds"]
        if len(splits) != saved_k or not all(isinstance(n, str) for f in splits for n in f):
            raise ValueError("'folds' must be k lists of names")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a valid splits file ({exc})") from exc
    remedy = "delete it to re-split (earlier folds then no longer compare)"
    if saved_k != k:
        raise InputError(path, f"made for k={saved_k} folds, asked for k={k}; use k={saved_k} "
                               f"or {remedy}")
    if saved_seed != seed:
        raise InputError(path, f"made with seed {saved_seed}, asked for seed {seed}; use seed "
                               f"{saved_seed} or {remedy}")
    saved = {n for f in splits for n in f}
    missing, extra = sorted(set(names) - saved), sorted(saved - set(names))
    if missing or extra:
        raise InputError(path, f"does not match the dataset: {len(missing)} case(s) not in the "
                               f"file (e.g. {missing[:3]}), {len(extra)} in the file but not in "
                               f"the dataset (e.g. {extra[:3]}); {remedy}")
    if groups is not None:
        fold_of = {n: i for i, f in enumerate(splits) for n in f}
        folds_of: dict[str, set] = {}
        for n, g in zip(names, groups):
            folds_of.setdefault(str(g), set()).add(fold_of[n])
        split_groups = sorted(g for g, f in folds_of.items() if len(f) > 1)
        if split_groups:
            raise InputError(path, f"puts the cases of {len(split_groups)} patient group(s) into "
                                   f"several folds (e.g. {split_groups[:3]}): made before the "
                                   f"dataset recorded groups; {remedy}")
    return [list(f) for f in splits]
