"""Export trained folds as Paddle inference models (``paddle.jit.save``: ``.json`` + ``.pdiparams``).

Layout written (default ``work/<experiment>/export/``, read by :mod:`l3loc.inference`)::

    export/export.json                    what was exported: views, folds, input spec, versions,
                                          and the sha256 of each fold's best.pdparams (prediction
                                          refuses an export whose run's weights changed since)
    export/decision.json                  the run's evaluation decision (l3loc.runs), if evaluated
    export/<view>/fold_<K>/model.json     the graph (input ``image`` [1, 1, H, W], H dynamic)
    export/<view>/fold_<K>/model.pdiparams
    export/<view>/fold_<K>/config.yaml    the fold's resolved config (preprocessing to apply)

The exported graph ends in a sigmoid, so it outputs the confidence map itself. The height is
dynamic (any multiple of the net's stride); the width is fixed to the canvas width the net was
trained on, which lets oneDNN plan the convolutions once per height.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from l3loc.atomic import atomic_dir, write_text
from l3loc.errors import InputError
from l3loc.runs import (DECISION, EXPORT_GRAPH, EXPORT_MANIFEST, EXPORT_PARAMS, EXPORT_SUBDIR, WEIGHTS,
                        available_folds, epochs_done, read_decision, sha256)
from l3loc.io.checkpoint import load_checkpoint
from l3loc.models import build_net
from l3loc.mip import VIEWS

log = logging.getLogger("l3loc")


def _sigmoid_net(net):
    import paddle

    class SigmoidNet(paddle.nn.Layer):
        """The trained net followed by a sigmoid: logits -> confidence map."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            return paddle.nn.functional.sigmoid(self.inner(image))

    return SigmoidNet(net)


def export_fold(fold_dir: str | os.PathLike, out_dir: str | os.PathLike,
                dynamic_width: bool = False, overwrite: bool = False) -> Path:
    """Export one trained fold (``best.pdparams`` + ``config.yaml``) to ``out_dir``.

    The three files are written in a temporary folder beside ``out_dir`` and moved in by one
    rename, so a crash never leaves a half-exported fold.

    Args:
        fold_dir: ``work/<experiment>/<view>/fold_<K>``.
        out_dir: destination folder (``.../export/<view>/fold_<K>``).
        dynamic_width: export width as dynamic too (InputSpec [1, 1, None, None]); default fixed
            to the config's canvas width.
        overwrite: replace an existing export.

    Returns:
        ``out_dir``.
    """
    import paddle

    from l3loc.config import load_config

    fold_dir, out_dir = Path(fold_dir), Path(out_dir)
    weights, config = fold_dir / "best.pdparams", fold_dir / "config.yaml"
    for p in (weights, config):
        if not p.is_file():
            raise InputError(p, "missing; export needs a trained fold")
    if out_dir.exists():
        if not overwrite:
            raise InputError(out_dir, "exists; pass --overwrite to export again")
    done, epochs = epochs_done(fold_dir)
    if done < epochs:
        log.warning("[EXPORT] %s: %d of %d epochs logged (still training or stopped); exporting "
                    "its best.pdparams so far", fold_dir, done, epochs)
    cfg = load_config(config)
    net = build_net(cfg)
    net.set_state_dict(load_checkpoint(weights))
    net.eval()
    model = _sigmoid_net(net)
    model.eval()
    width = None if dynamic_width else int(cfg["preprocess"]["canvas"][1])
    spec = paddle.static.InputSpec([1, 1, None, width], "float32", "image")
    with atomic_dir(out_dir) as tmp:
        paddle.jit.save(model, str(tmp / Path(EXPORT_GRAPH).stem), input_spec=[spec])
        for name in (EXPORT_GRAPH, EXPORT_PARAMS):
            if not (tmp / name).is_file():
                raise RuntimeError(f"paddle.jit.save did not write {name} (Paddle "
                                   f"{paddle.__version__}; l3loc expects Paddle 3.x)")
        shutil.copyfile(config, tmp / "config.yaml")
    return out_dir


def fold_weights(fold_dir: str | os.PathLike, net) -> None:
    """Set ``net``'s weights to those of a trained fold (``best.pdparams``) or an exported one
    (``model.json`` + ``model.pdiparams``, as :func:`export_fold` writes and models are shipped):
    the start of a fine-tuning (``train.init_from``).

    An export names its tensors after the net's parameters (``build_net`` names them afresh,
    ``conv2d_0.w_0`` ...; loading adds a ``_<n>`` suffix), so they are matched by name; then the
    net and the export are run on one image and must agree, so a mismatch can never pass silently.

    Raises:
        InputError: neither kind of weights in ``fold_dir``, or weights of another architecture.
    """
    import numpy as np
    import paddle

    from l3loc.config import load_config

    fold_dir = Path(fold_dir)
    own = net.state_dict()
    if (fold_dir / WEIGHTS).is_file():
        source, exported = fold_dir / WEIGHTS, None
        state = dict(load_checkpoint(source))
    elif (fold_dir / EXPORT_PARAMS).is_file():
        source, exported = fold_dir, paddle.jit.load(str(fold_dir / Path(EXPORT_GRAPH).stem))
        key_of = {t.name: key for key, t in own.items()}
        state = {}
        for t in exported.parameters():
            name = t.name if t.name in key_of else t.name.rsplit("_", 1)[0]
            if name in key_of:
                state[key_of[name]] = t
    else:
        raise InputError(fold_dir, f"holds neither {WEIGHTS} (a run's fold) nor {EXPORT_PARAMS} (an export)")
    unfit = [k for k, t in own.items() if k not in state or list(state[k].shape) != list(t.shape)]
    if unfit:
        raise InputError(source, f"not weights of this network ({len(unfit)} of its {len(own)} parameters "
                         f"missing or of another shape, e.g. {unfit[0]})")
    net.set_state_dict(state)
    if exported is None:
        return
    was_training = net.training
    net.eval()
    width = int(load_config(fold_dir / "config.yaml")["preprocess"]["canvas"][1])   # the export's fixed width
    image = paddle.to_tensor(np.random.default_rng(0).random((1, 1, 64, width), dtype=np.float32))
    with paddle.no_grad():
        gap = float(paddle.abs(paddle.nn.functional.sigmoid(net(image)) - exported(image)).max())
    if was_training:
        net.train()
    if gap > 1e-4:
        raise InputError(fold_dir, f"the export and this network disagree on a test image (by {gap:.3g}): "
                         "not weights of this network")


def export_experiment(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                      views=None, folds=None, dynamic_width: bool = False,
                      overwrite: bool = False) -> dict:
    """Export every trained fold of ``run_dir`` (or the chosen views/folds).

    Args:
        run_dir: ``work/<experiment>``.
        out_dir: destination; default ``run_dir/export``.
        views: view names; default every trained view.
        folds: 1-based folds; default every trained fold of each view.
        dynamic_width: see :func:`export_fold`.
        overwrite: replace existing exports.

    Returns:
        The manifest written to ``out_dir/export.json``.
    """
    import paddle

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / EXPORT_SUBDIR
    views = list(views) if views else [v for v in VIEWS if available_folds(run_dir, v, "best.pdparams")]
    if not views:
        raise InputError(run_dir, "no trained folds to export (expected <view>/fold_<K>/best.pdparams)")
    manifest = {"source": str(run_dir), "paddle": paddle.__version__,
                "input": {"name": "image", "shape": [1, 1, None, None if dynamic_width else "canvas"],
                          "dtype": "float32", "range": "[0, 1] (HU window)"},
                "output": "sigmoid confidence map, same shape as the input", "views": {},
                "weights": {}}
    for view in views:
        have = available_folds(run_dir, view, "best.pdparams")
        chosen = list(folds) if folds else have
        missing = sorted(set(chosen) - set(have))
        if missing:
            raise InputError(run_dir, f"{view}: fold(s) {missing} are not trained (have {have})")
        for k in chosen:
            dest = export_fold(run_dir / view / f"fold_{k}", out_dir / view / f"fold_{k}",
                               dynamic_width, overwrite)
            log.info("[EXPORT] %s fold %d -> %s", view, k, dest)
            manifest["weights"][f"{view}/fold_{k}"] = sha256(run_dir / view / f"fold_{k}" / WEIGHTS)
        manifest["views"][view] = chosen
    decision = read_decision(run_dir)
    if decision is not None:  # the threshold and view travel with the models
        write_text(out_dir / DECISION, json.dumps(decision, indent=1))
    write_text(out_dir / EXPORT_MANIFEST, json.dumps(manifest, indent=1))
    return manifest
