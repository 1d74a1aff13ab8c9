"""Trained models behind one interface: ``confidence_map(image [H, W]) -> prob [H, W]``.

A :class:`Localiser` holds, per view, a :class:`ViewModel`: the map model plus the resolved
config it was trained with (preprocessing, label columns, decoder). Three map models share the
interface, so prediction runs one code path whatever computes the map:

- :class:`DygraphMaps`: the trained nets (``best.pdparams`` of one fold or several), run eagerly;
- :class:`PredictorMaps`: the exported inference models (``model.json`` + ``model.pdiparams``,
  see :mod:`l3loc.export`), run with ``paddle.inference`` (oneDNN on CPU, CUDA on a GPU);
- :class:`FunctionMaps`: any Python function, the seam tests use to plug in a "perfect" model.

A fold ensemble averages the folds' sigmoid maps (not their logits, nor their decoded rows: a
fold that is unsure then pulls the confidence down instead of moving the row).

Folder layouts read here (``root`` = ``work/<experiment>`` or an export folder)::

    root/<view>/fold_<K>/config.yaml       resolved config (both layouts)
    root/<view>/fold_<K>/best.pdparams     trained weights (experiment)
    root/<view>/fold_<K>/model.json        exported graph + model.pdiparams (export)
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.models import build_net, net_stride
from l3loc.preprocess import band_col_range
from l3loc.preprocess_config import PreprocessConfig
from l3loc.row_windows import pad_rows_to_multiple
from l3loc.decode import DECODERS
from l3loc.runs import (DECISION_VIEWS, EXPORT_GRAPH, EXPORT_MANIFEST, EXPORT_PARAMS, EXPORT_SUBDIR,
                        FUSED, REFINED, WEIGHTS, available_folds, default_view, evaluated_threshold, nets_of,
                        read_decision, sha256, stale_folds)
from l3loc.placement import PLACING_VIEW

log = logging.getLogger("l3loc")

BACKENDS = ("auto", "dygraph", "predictor")


class MapModel(Protocol):
    """Anything that turns a processed full-height image into a confidence map."""

    def fold_maps(self, image: np.ndarray) -> list[np.ndarray]:
        """``image`` float32 [H, W] in [0, 1] -> one probability map per net (fold), each float32
        [H, W], or [levels, H, W] for a model with one channel per level (``label.levels``)."""

    def confidence_map(self, image: np.ndarray) -> np.ndarray:
        """The mean of :meth:`fold_maps`: the ensemble's map."""


class FoldMeanMaps:
    """``confidence_map`` as the mean of ``fold_maps`` (the ensemble; see the module docstring)."""

    def confidence_map(self, image: np.ndarray) -> np.ndarray:
        return np.mean(self.fold_maps(image), axis=0)


@dataclass
class FunctionMaps(FoldMeanMaps):
    """A map model from functions ``image [H, W] -> prob [H, W]``, one per "fold" (tests,
    baselines)."""

    fn: Callable[[np.ndarray], np.ndarray] | Sequence[Callable[[np.ndarray], np.ndarray]]
    backend: str = "function"

    def fold_maps(self, image: np.ndarray) -> list[np.ndarray]:
        out = []
        for fn in (self.fn if isinstance(self.fn, Sequence) else [self.fn]):
            prob = np.asarray(fn(image), dtype=np.float32)
            if prob.shape[-2:] != image.shape or prob.ndim not in (2, 3):
                raise ValueError(f"map function returned shape {prob.shape} for an image {image.shape}")
            out.append(prob)
        return out


class DygraphMaps(FoldMeanMaps):
    """The sigmoid maps of one or more trained nets, run eagerly (the fallback path).

    Args:
        nets: paddle Layers (already in eval mode) mapping [1, 1, H, W] -> logits [1, 1, H, W];
            each pads images to its own ``stride`` (``l3loc.validation.predict_map``).
    """

    backend = "dygraph"

    def __init__(self, nets: Sequence):
        self.nets = list(nets)

    def fold_maps(self, image: np.ndarray) -> list[np.ndarray]:
        import paddle

        from l3loc.validation import predict_map

        with paddle.no_grad():
            return [predict_map(net, image) for net in self.nets]


class PredictorMaps(FoldMeanMaps):
    """The maps of exported inference models run with ``paddle.inference``.

    The exported graphs end in a sigmoid (see :func:`l3loc.export.export_fold`), so their output
    is already a probability map. Opening an export from someone else runs no code: ``model.json``
    is JSON and ``model.pdiparams`` Paddle's binary tensor stream (``save_combine``), both parsed
    by Paddle's C++ loader, no pickle involved (``tests/test_export.py`` checks it).

    Args:
        model_dirs: folders holding ``model.json`` + ``model.pdiparams``.
        stride: the nets' down-sampling factor.
        device: "cpu" (oneDNN) or "gpu".
        cpu_threads: math threads per predictor on CPU (default: ``OMP_NUM_THREADS``, set by
            ``l3loc`` to at most 2).
    """

    backend = "predictor"

    def __init__(self, model_dirs: Sequence[Path], stride: int, device: str = "cpu",
                 cpu_threads: int | None = None):
        from paddle import inference

        self.stride = int(stride)
        threads = cpu_threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
        self.predictors = []
        for d in model_dirs:
            config = inference.Config(str(Path(d) / EXPORT_GRAPH), str(Path(d) / EXPORT_PARAMS))
            if device == "gpu":
                config.enable_use_gpu(256, 0)
            else:
                config.disable_gpu()
                config.enable_mkldnn()
                # oneDNN caches one kernel set per input shape; heights differ from scan to scan,
                # so keep the cache bounded instead of growing over a cohort
                config.set_mkldnn_cache_capacity(8)
                config.set_cpu_math_library_num_threads(threads)
            config.disable_glog_info()
            self.predictors.append(inference.create_predictor(config))

    def fold_maps(self, image: np.ndarray) -> list[np.ndarray]:
        padded = pad_rows_to_multiple(np.asarray(image, dtype=np.float32), self.stride)
        x = np.ascontiguousarray(padded[None, None])
        out = []
        for predictor in self.predictors:
            handle = predictor.get_input_handle(predictor.get_input_names()[0])
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
            predictor.run()
            maps = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()[0]
            maps = maps[:, : image.shape[0]]                      # [levels, H, W]
            out.append(maps[0] if maps.shape[0] == 1 else maps)
        return out


@dataclass
class ViewModel:
    """One view's map model and the config it was trained with.

    Attributes:
        view: "frontal" or "sagittal".
        maps: the map model.
        cfg: the resolved experiment config (``preprocess``, ``label``, ``eval`` sections used).
        folds: the folds averaged (empty for a function model).
    """

    view: str
    maps: MapModel
    cfg: dict
    folds: tuple[int, ...] = ()

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.cfg["preprocess"])

    @property
    def spacing_mm(self) -> float:
        return float(self.cfg["preprocess"]["spacing_mm"])

    @property
    def col_range(self) -> tuple[float, float]:
        """The view's band as fractions of the canvas width (``band_col_range``)."""
        return band_col_range(self.preprocess, self.view)


@dataclass
class Localiser:
    """The models prediction runs: one :class:`ViewModel` per view used.

    Attributes:
        views: view name -> ViewModel (one or both views).
        threshold: peak confidence below which L3 counts as not found.
        source: where the models came from (for reports).
        threshold_source: where the threshold came from.
        model_id: the shipped model's id (``l3loc.shipping``), "" for an experiment's models.
        device: where the models run ("cpu" or "gpu").
        weights: sha256 of each loaded fold's weight file (``"<view>/fold_<K>"``), so a result
            can tell which weights made it (``predict --resume``).
        placing: the view that only places the other view's rows (``l3loc.placement``; the
            ``refined`` decision), "" when every view decides.
    """

    views: dict[str, ViewModel]
    threshold: float
    source: str = ""
    threshold_source: str = "config"
    notes: list[str] = field(default_factory=list)
    model_id: str = ""
    device: str = "cpu"
    weights: dict = field(default_factory=dict)
    placing: str = ""

    @property
    def view(self) -> str:
        """The decision view this localiser makes (one of ``DECISION_VIEWS``)."""
        if self.placing:
            return REFINED
        return FUSED if len(self.views) == 2 else next(iter(self.views))

    def fingerprint(self) -> dict:
        """What decides a result: the models, their weights, folds, decoders and threshold."""
        return {"model_id": self.model_id or None, "models": self.source,
                "views": {v: list(vm.folds) for v, vm in self.views.items()},
                "decoders": {v: vm.cfg["eval"]["decoder"] for v, vm in self.views.items()},
                "threshold": self.threshold, "weights": self.weights,
                **({"placing": self.placing} if self.placing else {})}

    @property
    def backend(self) -> str:
        return ",".join(sorted({getattr(v.maps, "backend", "?") for v in self.views.values()}))


def function_localiser(fn: Callable[[np.ndarray], np.ndarray] | Sequence[Callable] | Mapping,
                       cfg: dict, views: Sequence[str] = ("frontal", "sagittal"),
                       threshold: float | None = None, placing: str = "") -> Localiser:
    """A Localiser whose every view's map is ``fn(image)`` (a list of functions: one "fold"
    each, numbered from 1; a mapping: view -> its function or list); the seam for stub models
    in tests. ``placing``: as ``Localiser.placing``."""
    def view_model(v, f):
        folds = tuple(range(1, len(f) + 1)) if isinstance(f, Sequence) else ()
        return ViewModel(v, FunctionMaps(f), cfg, folds)

    vm = {v: view_model(v, fn[v] if isinstance(fn, Mapping) else fn) for v in views}
    thr = float(cfg["eval"]["threshold"] if threshold is None else threshold)
    return Localiser(vm, thr, source="function", threshold_source="argument", placing=placing)


# ----------------------------------------------------------------------------- run folders

def _fold_configs(root: Path, view: str, folds: Sequence[int]) -> dict:
    """The resolved config shared by the folds (preprocessing and model must agree)."""
    from l3loc.config import load_shared_config

    return load_shared_config([Path(root) / view / f"fold_{k}" / "config.yaml" for k in folds],
                              f"fold {folds[0]}", "folds of one ensemble must share preprocessing "
                              "and network")


def load_fold_net(fold_dir: Path, cfg: dict):
    """The trained network of one fold (its ``best.pdparams``), in eval mode."""
    net = build_net(cfg)
    net.set_state_dict(load_checkpoint(Path(fold_dir) / "best.pdparams"))
    net.eval()
    return net


def _load_dygraph(root: Path, view: str, folds: Sequence[int]) -> ViewModel:
    cfg = _fold_configs(root, view, folds)
    nets = [load_fold_net(Path(root) / view / f"fold_{k}", cfg) for k in folds]
    return ViewModel(view, DygraphMaps(nets), cfg, tuple(folds))


def _load_predictor(root: Path, view: str, folds: Sequence[int], device: str) -> ViewModel:
    cfg = _fold_configs(root, view, folds)
    stride = net_stride(cfg)
    dirs = [Path(root) / view / f"fold_{k}" for k in folds]
    return ViewModel(view, PredictorMaps(dirs, stride, device), cfg, tuple(folds))


def load_localiser(root: str | os.PathLike, view: str | None = None,
                   folds: Sequence[int] | None = None, backend: str = "auto",
                   device: str = "cpu", threshold: float | None = None,
                   allow_stale_export: bool = False) -> Localiser:
    """Load the models of an experiment folder or an export folder.

    Args:
        root: ``work/<experiment>`` (its ``export/`` subfolder is used for the predictor) or a
            folder written by ``tools/export.py``.
        view: "frontal", "sagittal", "fused" (both views' nets), "refined" (both: the frontal
            decides, the sagittal places its rows), or None (:func:`default_view`).
        folds: 1-based folds to average; None = every available fold.
        backend: "dygraph" (``best.pdparams``), "predictor" (exported models), or "auto" (the
            predictor when exported models exist, else dygraph; if the predictor cannot be
            created, dygraph with a logged warning).
        device: "cpu" or "gpu".
        threshold: override the abstention threshold.
        allow_stale_export: only warn (instead of refusing) when the run's ``export/`` was made
            from weights that have changed since (a fold retrained after exporting).

    The threshold, default view and decoder are evaluation's decision (``decision.json``, see
    :mod:`l3loc.runs`), which export copies, so an export decides as its run folder does.

    Raises:
        InputError: nothing to load, an unknown view/backend, missing folds, inconsistent configs,
            a stale export (unless ``allow_stale_export``).
    """
    root = Path(root)
    if backend not in BACKENDS:
        raise InputError("--backend", f"unknown backend {backend!r}: expected one of {BACKENDS}")
    view = view or default_view(root)
    if view not in DECISION_VIEWS:
        raise InputError("--view", f"unknown view {view!r}: expected {', '.join(DECISION_VIEWS)}")
    views = nets_of(view)
    export_root = root / EXPORT_SUBDIR if (root / EXPORT_SUBDIR).is_dir() else root
    notes: list[str] = []
    loaded: dict[str, ViewModel] = {}
    weights: dict[str, str] = {}
    for v in views:
        trained = available_folds(root, v, "best.pdparams")
        exported = available_folds(export_root, v, EXPORT_GRAPH)
        use = _choose_backend(backend, trained, exported, root, v)
        have = exported if use == "predictor" else trained
        chosen = list(folds) if folds else have
        missing = sorted(set(chosen) - set(have))
        if missing:
            raise InputError(root, f"{v}: fold(s) {missing} not found for the {use} backend "
                                   f"(available: {have})")
        if use == "predictor" and export_root != root:
            _check_export_current(export_root, root, v, chosen, allow_stale_export, notes)
        if use == "predictor":
            try:
                loaded[v] = _load_predictor(export_root, v, chosen, device)
                weights.update({f"{v}/fold_{k}": sha256(export_root / v / f"fold_{k}" / EXPORT_PARAMS)
                                for k in chosen})
                continue
            except (RuntimeError, OSError, ValueError) as exc:
                if backend == "predictor" or not set(chosen) <= set(trained):
                    raise InputError(export_root, f"cannot create the inference predictor: {exc}") from None
                notes.append(f"{v}: predictor failed ({exc}); using dygraph")
                log.warning("[PREDICT] %s: predictor failed (%s); falling back to dygraph", v, exc)
        loaded[v] = _load_dygraph(root, v, chosen)
        weights.update({f"{v}/fold_{k}": sha256(root / v / f"fold_{k}" / WEIGHTS) for k in chosen})
    decision = read_decision(root)
    if decision and decision.get("decoder") in DECODERS:  # the decoder evaluation measured
        for vm in loaded.values():
            vm.cfg["eval"]["decoder"] = decision["decoder"]
    thr_source = "argument"
    if threshold is None:
        threshold = evaluated_threshold(root, view)
        thr_source = "eval/decision.json"
        if threshold is None:
            threshold = float(next(iter(loaded.values())).cfg["eval"]["threshold"])
            thr_source = "config eval.threshold"
            missing = (f"no eval/decision.json in {root}" if decision is None else
                       f"no evaluated threshold for the {view} view in {root}'s decision")
            notes.append(f"{missing}: threshold {threshold:g} is the config's "
                         "eval.threshold (evaluate the run's folds first: `l3loc eval`, or "
                         "`l3loc calibrate` for a pooled ensemble)")
            log.warning("[PREDICT] %s", notes[-1])
    return Localiser(loaded, float(threshold), source=str(root), threshold_source=thr_source,
                     notes=notes, device=device, weights=weights,
                     placing=PLACING_VIEW if view == REFINED else "")


def _check_export_current(export_root: Path, run_dir: Path, view: str, folds: Sequence[int],
                          allow_stale: bool, notes: list[str]) -> None:
    """Refuse (or with ``allow_stale`` warn about) a run's export whose folds' weights changed
    since it was made (``export.json`` records their sha256)."""
    try:
        recorded = json.loads((export_root / EXPORT_MANIFEST).read_text(encoding="utf-8"))["weights"]
    except (OSError, ValueError, KeyError, TypeError):
        notes.append(f"{view}: {export_root} records no weight checksums (exported before l3loc "
                     "recorded them); export again to have it checked")
        log.warning("[PREDICT] %s", notes[-1])
        return
    wanted = {f"{view}/fold_{k}" for k in folds}
    stale = stale_folds({k: d for k, d in recorded.items() if k in wanted}, run_dir)
    stale += sorted(wanted - set(recorded))
    if not stale:
        return
    problem = (f"exported from weights that changed since ({', '.join(stale)} retrained or "
               f"removed); run `l3loc export --experiment {run_dir} --overwrite`, or use "
               "--backend dygraph")
    if not allow_stale:
        raise InputError(export_root, problem + ", or pass --allow-stale-export to use it anyway")
    notes.append(f"{view}: stale export used: {problem}")
    log.warning("[PREDICT] %s: %s", export_root, problem)


def _choose_backend(backend: str, trained: list[int], exported: list[int], root: Path,
                    view: str) -> str:
    if backend == "dygraph":
        if not trained:
            raise InputError(root, f"{view}: no best.pdparams (the dygraph backend needs the "
                                   "training run folder, not an export)")
        return "dygraph"
    if backend == "predictor":
        if not exported:
            raise InputError(root, f"{view}: no exported model; run `python tools/export.py "
                                   f"--experiment {root.name}` first")
        return "predictor"
    if exported:
        return "predictor"
    if trained:
        return "dygraph"
    raise InputError(root, f"no {view} folds here (expected {view}/fold_<K>/best.pdparams or "
                           f"{EXPORT_GRAPH})")
