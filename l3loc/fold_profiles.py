"""Held-out row profiles of one trained fold: the fold's model run on exactly that fold's cases
(``splits[K-1]``), kept in ``<eval>/profiles/<view>_fold<K>.npz`` while the checkpoint and the data
cache are unchanged; and the two views of a fold fused row by row. :mod:`l3loc.evaluate` decodes
and scores them.

The model is a seam: ``model_loader(fold_dir, cfg) -> map_fn`` with ``map_fn(image [H, W]) ->
confidence map [H, W]``; the default (:func:`load_fold_model`) loads ``best.pdparams`` into the
configured network. Tests plug in exact ("perfect") or shifted maps through the same path.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from l3loc.atomic import atomic_path
from l3loc.case_geometry import CaseGeometry
from l3loc.decode import fuse_profiles, row_profile
from l3loc.errors import InputError
from l3loc.preprocess import band_col_range
from l3loc.preprocess_config import PreprocessConfig
from l3loc.runs import FUSED

log = logging.getLogger("l3loc")

MapFn = Callable[[np.ndarray], np.ndarray]
ModelLoader = Callable[[Path, dict], MapFn]


@dataclass
class FoldProfiles:
    """The raw row profiles of one fold's held-out cases under that fold's model of one view.

    Attributes:
        view, fold: which net (1-based fold).
        cfg: the fold's resolved config.
        names: held-out case names (= ``splits[fold-1]``, in that order).
        label_rows: true processed rows (NaN = negative case).
        geometries: one ``CaseGeometry`` per case.
        profiles: raw ``row_profile`` [H_i] per case (of the L3 channel).
        dataset: the view's ``CachedDataset`` (for drawing) and ``index`` (name -> its index).
        levels: the model's channels (``label.levels``; ("L3",) for a single-L3 model).
        level_profiles: a model with level channels: raw row profiles [len(levels), H_i] per
            case; None for a single-L3 model.
        level_label_rows: with ``level_profiles``, true processed rows [n, len(levels)] (NaN =
            absent).
        view_level_profiles: the fused view of a model with level channels: per case, each
            view's own level profiles (``level_profiles`` holds their mean); None otherwise.
    """

    view: str
    fold: int
    cfg: dict
    names: list[str]
    label_rows: np.ndarray
    geometries: list[CaseGeometry]
    profiles: list[np.ndarray]
    dataset: object = None
    index: dict = field(default_factory=dict)
    levels: tuple = ("L3",)
    level_profiles: list[np.ndarray] | None = None
    level_label_rows: np.ndarray | None = None
    view_level_profiles: list[dict[str, np.ndarray]] | None = None

    @property
    def spacing_mm(self) -> float:
        return float(self.cfg["preprocess"]["spacing_mm"])


def load_fold_model(fold_dir: Path, cfg: dict) -> MapFn:
    """The fold's ``best.pdparams`` in the configured network, as ``image -> confidence map``.

    Built as the engine builds it (fresh unique names), in eval mode, without gradients.
    """
    from l3loc.inference import DygraphMaps, load_fold_net

    net = load_fold_net(fold_dir, cfg)
    return DygraphMaps([net]).confidence_map


def _profile_cache_key(fold_dir: Path, dataset, names: Sequence[str], col_range,
                       levels: Sequence[str]) -> str:
    st = (Path(fold_dir) / "best.pdparams").stat()
    key = {"best": [st.st_size, st.st_mtime_ns], "cache": str(dataset.cache_dir),
           "names": list(names), "col_range": col_range}
    if tuple(levels) != ("L3",):
        key["levels"] = list(levels)
    return json.dumps(key, sort_keys=True)


def _read_profile_cache(path: Path, key: str) -> list[np.ndarray] | None:
    """The cached profiles ([H_i] each, or [levels, H_i] for a model with level channels:
    stored side by side along the last axis), None when absent or made otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return np.split(z["values"], np.cumsum(z["lengths"])[:-1], axis=-1)
    except (OSError, KeyError, ValueError):
        return None


def fold_profiles(view: str, fold: int, fold_dir: Path, splits: list[list[str]],
                  model_loader: ModelLoader | None = None, cache_dir: Path | None = None,
                  progress: bool = False) -> FoldProfiles:
    """Run fold ``fold``'s ``view`` model on exactly that fold's held-out cases.

    Args:
        view, fold: the net (1-based fold).
        fold_dir: its run folder (``config.yaml``, ``best.pdparams``).
        splits: the experiment's folds; the cases are ``splits[fold-1]``.
        model_loader: ``(fold_dir, cfg) -> map_fn``; None = ``load_fold_model``.
        cache_dir: where to keep the profiles for reuse (only with the default loader: a
            custom loader's maps are not identified by the checkpoint); None = no reuse.
        progress: tqdm bar.

    Raises:
        InputError: the fold is not in the splits, or a held-out case is missing from the data.
    """
    from tqdm import tqdm

    from l3loc.cache import open_cache
    from l3loc.config import load_config

    if not 1 <= fold <= len(splits):
        raise InputError(fold_dir, f"fold {fold} is not in splits.json ({len(splits)} folds)")
    cfg = load_config(Path(fold_dir) / "config.yaml")
    dataset = open_cache(cfg, view)
    index = {n: i for i, n in enumerate(dataset.names)}
    names = list(splits[fold - 1])
    missing = [n for n in names if n not in index]
    if missing:
        raise InputError(fold_dir, f"{len(missing)} held-out case(s) of fold {fold} are not in the "
                                   f"dataset {cfg['data']['source']} (e.g. {missing[:3]})")
    idx = [index[n] for n in names]
    levels = tuple(cfg["label"].get("levels", ["L3"]))
    multi = len(levels) > 1
    col_range = band_col_range(PreprocessConfig.from_dict(cfg["preprocess"]), view)
    cache_path = None
    profiles = None
    if cache_dir is not None and model_loader is None:
        cache_path = Path(cache_dir) / f"{view}_fold{fold}.npz"
        key = _profile_cache_key(fold_dir, dataset, names, list(col_range), levels)
        profiles = _read_profile_cache(cache_path, key)
        if profiles is not None:
            log.info("[EVAL] %s fold %d: reusing the profiles in %s", view, fold, cache_path)
    if profiles is None:
        map_fn = (model_loader or load_fold_model)(Path(fold_dir), cfg)
        profiles = []
        for i in tqdm(idx, desc=f"{view} fold {fold}", disable=not progress, leave=False):
            image, _, _ = dataset[i]
            prob = np.asarray(map_fn(image), dtype=np.float32)
            expected = (len(levels), *image.shape) if multi else image.shape
            if prob.shape != expected:
                raise ValueError(f"model map shape {prob.shape} != image shape {image.shape}"
                                 + (f" with {len(levels)} level channels" if multi else ""))
            profiles.append(np.stack([row_profile(m, col_range) for m in prob]).astype(np.float32)
                            if multi else row_profile(prob, col_range).astype(np.float32))
        if cache_path is not None:
            with atomic_path(cache_path) as tmp:
                np.savez(tmp, key=np.array(key), lengths=np.array([p.shape[-1] for p in profiles]),
                         values=np.concatenate(profiles, axis=-1))
    level_profiles = level_rows = None
    if multi:
        level_profiles = profiles
        profiles = [p[levels.index("L3")] for p in level_profiles]
        level_rows = np.stack([dataset.label_rows(i, levels) for i in idx])
    return FoldProfiles(view, fold, cfg, names, dataset.label_rows_px[idx].copy(),
                        [dataset.geometry(i) for i in idx], profiles, dataset, index, levels,
                        level_profiles, level_rows)


def fuse_folds(frontal: FoldProfiles, sagittal: FoldProfiles) -> FoldProfiles:
    """The fused view of one fold: row-wise ``fuse_profiles`` of the two views' raw profiles.

    Raises:
        InputError: the two views disagree on the row grid (spacing, a case's row count or
            label), so their rows are not the same slices.
    """
    where = f"fold {frontal.fold}"
    if frontal.spacing_mm != sagittal.spacing_mm:
        raise InputError(where, f"cannot fuse: frontal spacing {frontal.spacing_mm} mm, sagittal "
                                f"{sagittal.spacing_mm} mm")
    if frontal.names != sagittal.names:
        raise InputError(where, "cannot fuse: the two views hold different cases")
    fused = []
    for name, gf, gs, pf, ps in zip(frontal.names, frontal.geometries, sagittal.geometries,
                                    frontal.profiles, sagittal.profiles):
        if gf.n_rows != gs.n_rows or len(pf) != len(ps):
            raise InputError(where, f"cannot fuse case {name!r}: frontal has {gf.n_rows} rows, "
                                    f"sagittal {gs.n_rows}")
        fused.append(fuse_profiles([pf, ps]))
    same = np.allclose(frontal.label_rows, sagittal.label_rows, equal_nan=True)
    if not same:
        raise InputError(where, "cannot fuse: the two views' label rows differ")
    if frontal.levels != sagittal.levels:
        raise InputError(where, f"cannot fuse: frontal locates {frontal.levels}, sagittal "
                                f"{sagittal.levels}")
    # the level channels fuse as prediction fuses them: the mean of the raw profiles, each
    # view's own kept for the check that the two views' L3 is one vertebra
    level_profiles = views = None
    if frontal.level_profiles is not None:
        views = [{frontal.view: f, sagittal.view: s}
                 for f, s in zip(frontal.level_profiles, sagittal.level_profiles)]
        level_profiles = [np.mean(list(pair.values()), axis=0) for pair in views]
    return FoldProfiles(FUSED, frontal.fold, sagittal.cfg, frontal.names, frontal.label_rows,
                        sagittal.geometries, fused, sagittal.dataset, sagittal.index,
                        frontal.levels, level_profiles, frontal.level_label_rows, views)
