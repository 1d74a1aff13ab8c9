"""The model shipped inside the package: where it lives, how it is made, how it is loaded.

``l3loc predict scan.nii.gz`` without ``--experiment``/``--model`` runs the shipped model, so a
user who installed l3loc finds L3 without training anything. Layout (one model)::

    l3loc/shipped/<model_id>/metadata.json     model id, view, folds, threshold, training command
    l3loc/shipped/<model_id>/MODEL_CARD.md     data, figures, failure modes, intended use
    l3loc/shipped/<model_id>/export.json       + <view>/fold_<K>/{model.json, model.pdiparams,
                                               config.yaml}: an export folder (l3loc.export)
    l3loc/shipped/<model_id>/eval_summary.*    the experiment's k-fold evaluation, when it had one

``l3loc export --experiment <run> --ship <model_id>`` writes such a folder from a trained (and
evaluated) run; the view and threshold are the ones evaluation chose, so prediction with the
shipped model decides exactly as the evaluated experiment did. The environment variable
``L3LOC_SHIPPED_DIR`` points the lookup at another folder of shipped models (tests, a site's own
model) instead of the package's. Nothing in the folder is a pickle (JSON, YAML read with
``safe_load``, and the export's binary tensor stream read by Paddle's C++ loader), so opening a
shipped model runs no code from it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import l3loc
from l3loc.atomic import atomic_dir, write_text
from l3loc.errors import InputError

log = logging.getLogger("l3loc")

#: The package's folder of shipped models (package data).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: Overrides :data:`SHIPPED_DIR` when set.
SHIPPED_ENV = "L3LOC_SHIPPED_DIR"
#: The file that makes a folder a shipped model.
METADATA = "metadata.json"
MODEL_CARD = "MODEL_CARD.md"
#: The package should stay small: a shipped model larger than this is logged as a warning. Room
#: for three folds of both views of a ``cpu_fast`` net (6 x 1.96 MB): the ensemble the ship rule
#: measures is the one that ships, and fewer folds would be another, unmeasured model.
MAX_SHIPPED_MB = 12.0
#: How to make a model when none is shipped (the one-line error says it).
TRAIN_HINT = ("train one (`l3loc train --config cpu_fast --view both --fold all`, then "
              "`l3loc eval` and `l3loc export --experiment cpu_fast --ship <model_id>`) or pass "
              "--experiment/--model")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def shipped_root() -> Path:
    """The folder holding shipped models: ``$L3LOC_SHIPPED_DIR`` or the package's ``shipped/``."""
    return Path(os.environ.get(SHIPPED_ENV) or SHIPPED_DIR)


def is_shipped_model(folder: str | os.PathLike) -> bool:
    return (Path(folder) / METADATA).is_file()


def shipped_model_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The shipped model's folder, or None when none is installed.

    Raises:
        InputError: more than one model in the folder (which one ships would be a guess).
    """
    root = Path(root) if root is not None else shipped_root()
    if not root.is_dir():
        return None
    # a dot-folder is a model being written (l3loc.atomic.atomic_dir), not a shipped one
    models = sorted(d for d in root.iterdir()
                    if d.is_dir() and not d.name.startswith(".") and is_shipped_model(d))
    if len(models) > 1:
        raise InputError(root, f"holds {len(models)} shipped models "
                               f"({', '.join(d.name for d in models)}); keep exactly one")
    return models[0] if models else None


def read_metadata(folder: str | os.PathLike) -> dict:
    path = Path(folder) / METADATA
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable shipped-model metadata ({exc})") from None
    missing = [k for k in ("model_id", "view", "threshold") if k not in meta]
    if missing:
        raise InputError(path, f"shipped-model metadata lacks {', '.join(missing)}")
    return meta


def shipped_model_id(root: str | os.PathLike | None = None) -> str | None:
    """The installed shipped model's id, or None (for ``l3loc --version``)."""
    folder = shipped_model_dir(root)
    return read_metadata(folder)["model_id"] if folder else None


def require_shipped_model(root: str | os.PathLike | None = None) -> Path:
    """:func:`shipped_model_dir`, or a one-line error saying none is installed and what to do."""
    folder = shipped_model_dir(root)
    if folder is None:
        where = Path(root) if root is not None else shipped_root()
        raise InputError(where, f"no shipped model is installed; {TRAIN_HINT}")
    return folder


# ----------------------------------------------------------------------------- making one


def _fold_commands(run_dir: Path, views: dict) -> list[str]:
    """The distinct training commands of the exported folds (from each fold's ``env.json``)."""
    commands = []
    for view, folds in views.items():
        for k in folds:
            env = run_dir / view / f"fold_{k}" / "env.json"
            try:
                command = json.loads(env.read_text(encoding="utf-8")).get("command") or ""
            except (OSError, ValueError):
                command = ""
            commands.append(command or f"(not recorded in {env})")
    return list(dict.fromkeys(commands))


def _views_sentence(view: str) -> str:
    """How the model card says the views make the decision."""
    from l3loc.placement import PLACING_WINDOW_MM
    from l3loc.runs import FUSED, REFINED, decision_view

    view = decision_view(view)
    if view == REFINED:
        return ("the frontal nets decide (status, confidence, which vertebra); each row then moves "
                f"to the sagittal nets' peak of the same level within {PLACING_WINDOW_MM:g} mm "
                "where they have one")
    return "the two views' profiles fused" if view == FUSED else f"the {view} view alone"


def ship_model(run_dir: str | os.PathLike, model_id: str, view: str | None = None,
               folds=None, root: str | os.PathLike | None = None,
               overwrite: bool = False, reference_scan: str | os.PathLike | None = None) -> Path:
    """Export a trained experiment as the shipped model ``<root>/<model_id>``.

    Args:
        run_dir: ``work/<experiment>`` (trained; evaluated, so that the threshold and view are the
            ones chosen on the held-out folds).
        model_id: folder name and the id ``l3loc --version`` and ``run.json`` report.
        view: "frontal", "sagittal", "fused" or "refined"; default the best evaluated view.
        folds: 1-based folds to ship (each fold adds its weights); default every trained fold.
        root: folder of shipped models; default :func:`shipped_root`.
        overwrite: replace an existing model of that id.
        reference_scan: a scan the shipped model is run on at once; its result is recorded in
            ``metadata.json`` (``reference``) and the model card, so a test can check that the
            installed weights still give it (the repository's real example CT, typically).

    Returns:
        The model folder. Its ``MODEL_CARD.md`` has the facts known here (data, config, commands,
        synthetic k-fold figures) and marks what a person must measure and fill in.
    """
    from l3loc.config import load_config
    from l3loc.export import export_experiment
    from l3loc.runs import default_view, evaluated_threshold, nets_of

    run_dir = Path(run_dir)
    if not _ID_RE.match(model_id):
        raise InputError("--ship", f"model id {model_id!r}: use letters, digits, '.', '_', '-'")
    root = Path(root) if root is not None else shipped_root()
    dest = root / model_id
    if dest.exists() and not overwrite:
        raise InputError(dest, "exists; pass --overwrite to replace the shipped model")
    view = view or default_view(run_dir)
    views = nets_of(view)
    threshold = evaluated_threshold(run_dir, view)
    threshold_source = f"eval/decision.json of experiment {run_dir.name}"
    with atomic_dir(dest) as tmp:
        manifest = export_experiment(run_dir, tmp, views, folds, overwrite=True)
        first = next(iter(manifest["views"].items()))
        cfg = load_config(tmp / first[0] / f"fold_{first[1][0]}" / "config.yaml")
        if threshold is None:
            threshold = float(cfg["eval"]["threshold"])
            threshold_source = "config eval.threshold (the experiment was not evaluated)"
            log.warning("[SHIP] %s has no eval/decision.json: shipping the config's threshold "
                        "%.2f; run `l3loc eval --experiment %s` first", run_dir, threshold,
                        run_dir.name)
        for name in ("summary.md", "summary.csv"):
            if (run_dir / "eval" / name).is_file():
                shutil.copyfile(run_dir / "eval" / name, tmp / f"eval_{name}")
        size_mb = sum(p.stat().st_size for p in tmp.rglob("*.pdiparams")) / 1e6
        if size_mb > MAX_SHIPPED_MB:
            log.warning("[SHIP] %.1f MB of weights: more than the %.0f MB a package should carry; "
                        "ship fewer folds (--fold) or one view", size_mb, MAX_SHIPPED_MB)
        meta = {"model_id": model_id, "view": view, "folds": manifest["views"],
                "threshold": float(threshold), "threshold_source": threshold_source,
                "training_commands": _fold_commands(run_dir, manifest["views"]),
                "experiment": run_dir.name, "data_source": cfg["data"]["source"],
                "weights_mb": round(size_mb, 2), "l3loc": l3loc.__version__,
                "paddle": manifest["paddle"], "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        if reference_scan is not None:
            meta["reference"] = _reference_result(tmp, meta, reference_scan)
        write_text(tmp / METADATA, json.dumps(meta, indent=1))
        write_text(tmp / MODEL_CARD, model_card(meta, cfg, tmp))
    others = [d.name for d in root.iterdir() if d.is_dir() and d != dest and is_shipped_model(d)]
    if others:
        log.warning("[SHIP] %s also holds %s; remove them: exactly one model ships", root,
                    ", ".join(others))
    return dest


#: The fields of a prediction a reference result keeps (and a test compares).
REFERENCE_FIELDS = ("status", "l3_slice", "l3_z_mm", "confidence")


def _reference_result(folder: Path, meta: dict, scan) -> dict:
    """The model in ``folder`` run on ``scan``: the record's :data:`REFERENCE_FIELDS`."""
    from l3loc.api import find_l3

    write_text(folder / METADATA, json.dumps(meta, indent=1))  # makes ``folder`` loadable
    rec = find_l3(scan, model=folder, device="cpu")
    if rec["status"] == "error":
        raise InputError(scan, f"reference scan failed: {rec['message']}")
    out = {"scan": Path(scan).name}
    for k in REFERENCE_FIELDS:
        v = rec[k]
        out[k] = None if isinstance(v, float) and v != v else v  # NaN -> null
    return out


def model_card(meta: dict, cfg: dict, folder: Path) -> str:
    """The model card's text: the facts known at export, and marked gaps a person fills in."""
    pre, model = cfg["preprocess"], cfg["model"]
    folds = "; ".join(f"{v} folds {', '.join(map(str, f))}" for v, f in meta["folds"].items())
    summary = folder / "eval_summary.md"
    # evaluation's own headings become sub-headings of this section
    kfold = (re.sub(r"(?m)^#", "###", summary.read_text(encoding="utf-8").strip())
             if summary.is_file() else
             "Not evaluated: run `l3loc eval --experiment "
             f"{meta['experiment']}` and ship again.")
    commands = "\n".join(meta["training_commands"])
    ref = meta.get("reference")
    reference = ("No reference scan was recorded." if not ref else
                 f"Reference scan `{ref['scan']}` (recorded at export, checked by the tests): "
                 f"{ref['status']}" + (f", L3 slice {ref['l3_slice']} (z {ref['l3_z_mm']:.1f} mm)"
                                      if ref["l3_slice"] is not None else "")
                 + f", confidence {ref['confidence']:.3f}.")
    view_opt = "" if meta["view"] in (None, "") else f" --view {meta['view']}"
    return f"""# Model card: {meta['model_id']}

Written by `l3loc export --ship` on {meta['created']}. Lines marked **TO FILL** are measured by a
person and filled in before the model ships; nothing here is an estimate.

## What it is

A {model['type']} (base {model.get('base_channels')} channels, depth {model.get('depth')}) per
view on maximum-intensity projections of the CT ({folds}; the folds' confidence maps are
averaged; {_views_sentence(meta['view'])}). Preprocessing: {pre['spacing_mm']} mm pixels, HU window
{pre['hu_window']}, canvas {pre['canvas']}, side mask {pre['side_mask']}. A scan is `not_found`
below a peak confidence of {meta['threshold']:.3f} ({meta['threshold_source']}).
Weights: {meta['weights_mb']} MB (Paddle inference models, Paddle {meta['paddle']}).

## Training data

Synthetic CT phantoms only (`l3loc/synth`), `data.source: {meta['data_source']}`. No real CT was
used for training, model selection or the threshold.

## Reproduce

```bash
{commands}
l3loc eval --experiment {meta['experiment']}
l3loc export --experiment {meta['experiment']}{view_opt} --ship {meta['model_id']}
```

## Figures

### Synthetic k-fold (held-out folds of the training phantoms)

{kfold}

### Real CT

{reference}

**TO FILL:** the figures on the labelled real validation scans (number of scans, statuses, error
in mm and in vertebrae), with the command that measured them.

## Known failure modes

**TO FILL:** what goes wrong on real scans (seen in the QC pictures of the real validation run).

## Intended use

Research (body-composition studies) only, not a medical device. Every prediction comes with a
QC picture (`qc.png`); a person checks it before the slice is used.
"""


# ----------------------------------------------------------------------------- loading


def load_model(model=None, view: str | None = None, folds=None, backend: str = "auto",
               device: str = "auto", threshold: float | None = None, work_dir="work",
               allow_stale_export: bool = False):
    """The :class:`~l3loc.inference.Localiser` a prediction runs.

    Args:
        model: None = the shipped model; a Localiser (returned as is); an experiment name under
            ``work_dir``, a run folder, an export folder or a shipped-model folder.
        view, folds, backend, threshold, allow_stale_export: see
            :func:`l3loc.inference.load_localiser`; for a
            shipped model the view and threshold default to the ones it was shipped with.
        device: "cpu", "gpu" or "auto" (:func:`l3loc.cli.resolve_device`).

    Raises:
        InputError: no shipped model installed (when ``model`` is None), or a bad model folder.
    """
    from l3loc.cli import resolve_device
    from l3loc.inference import Localiser, load_localiser
    from l3loc.runs import decision_view, resolve_run_dir

    if isinstance(model, Localiser):
        return model
    device = resolve_device(device)
    folder = require_shipped_model() if model is None else resolve_run_dir(model, work_dir)
    if not is_shipped_model(folder):
        return load_localiser(folder, view, folds, backend, device, threshold, allow_stale_export)
    meta = read_metadata(folder)
    loc = load_localiser(folder, view or decision_view(meta["view"]), folds, backend, device,
                         meta["threshold"] if threshold is None else threshold)
    loc.model_id = meta["model_id"]
    if threshold is None:
        loc.threshold_source = f"shipped model ({meta.get('threshold_source', 'metadata.json')})"
    return loc
