"""CT scans -> L3 slice, confidence, QC picture and the extracted axial slice, for one scan or a cohort.

Per scan (``out/<name>/``)::

    result.json        the record below (also one row of ``out/results.csv``)
    qc.png             frontal + sagittal MIPs with the predicted line, and the confidence profile
    frontal_mip.png, sagittal_mip.png, review.js   what the review page shows (l3loc/review.py)
    l3_axial.png       the L3 slice, soft-tissue window (W400/L40)
    l3_axial.nii.gz    the L3 slice as a one-slice volume (spacing and position of the scan)
    l3_slab.nii.gz     with ``slab_mm``: the mean of the slices within +-slab_mm of L3 (+ .png)
    l3_slice.dcm       DICOM input only: a copy of the original file of the L3 slice

and ``out/results.csv``, ``out/index.html`` (the review page, sorted for review) and ``out/run.json`` (what ran).

The record: ``status`` is ``found``, ``not_found`` (peak confidence below the threshold: L3 is
probably not in the scan), ``ambiguous`` (a second candidate of similar confidence at least a
vertebra away, or a view or fold of the model that on its own puts L3 on another vertebra, or
levels that do not read as a normal spine, or L3 at the scan's first or last 15 mm; the
candidates are reported and ``message`` says why) or ``error`` (``message`` says why). ``l3_slice`` is the
nearest slice in the file's own indexing (0-based along its superior-inferior voxel axis, as a
viewer shows it; for a DICOM series, the index in the series as SimpleITK sorts it, and
``l3_slice.dcm`` is that file), ``l3_slice_exact`` the fractional position, ``l3_z_mm`` the world
z (mm, +superior) of the prediction. Not found: no slice, no z.

One failing scan never stops a cohort: its row says why. Every file is written atomically.
The inputs are listed by :mod:`l3loc.scan_inputs`, each scan localised by
:mod:`l3loc.localisation`, its files written by :mod:`l3loc.scan_outputs`; this module makes the
records and runs the cohort.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

import numpy as np

import l3loc
from l3loc.atomic import write_table, write_text
from l3loc.case_geometry import CaseGeometry
from l3loc.errors import InputError
from l3loc.inference import Localiser
from l3loc.io.annotations import annotation_to_canonical_row, default_name
from l3loc.io.ct_checks import checked_ct, read_ct
from l3loc.io.geometry import CTVolume
from l3loc.levels import LEVELS
from l3loc.localisation import localise, model_levels
from l3loc.review import write_index_html
from l3loc.runs import FUSED
from l3loc.scan_inputs import ScanInput
from l3loc.scan_outputs import write_pictures, write_slice_outputs

log = logging.getLogger("l3loc")

OUT_STATUSES = ("found", "not_found", "ambiguous", "error")
#: The localiser that made an output folder's results (Localiser.fingerprint), for --resume.
MODEL_FILE = "model.json"
#: Columns of ``results.csv`` (also the keys of every record), in order.
RESULT_COLUMNS = (
    "name", "input", "status", "message", "l3_slice", "l3_slice_exact", "l3_z_mm", "confidence",
    "second_slice", "second_z_mm", "second_confidence", "view",
    "frontal_status", "frontal_row", "frontal_slice", "frontal_z_mm", "frontal_confidence",
    "sagittal_status", "sagittal_row", "sagittal_slice", "sagittal_z_mm", "sagittal_confidence",
    "true_slice", "true_z_mm", "error_mm", "n_slices", "slice_spacing_mm", "seconds", "warnings",
    "backend", "qc_png", "axial_png", "axial_nifti", "slab_nifti", "dicom_file",
) + tuple(f"{k.lower()}_{f}" for k in LEVELS if k != "L3"   # L3 is l3_slice, l3_z_mm, confidence
        for f in ("slice", "z_mm", "confidence")) + (
    "sequence_confidence", "extracted_level")


def predict_volume(ct: CTVolume, localiser: Localiser, folder: Path | None = None,
                   slab_mm: float | None = None, name: str | None = None,
                   truth: dict | None = None, level: str = "L3") -> dict:
    """Localise L3 in one volume; write the per-scan files into ``folder`` (if given).

    Args:
        ct: the scan (``read_volume``).
        localiser: the models (``l3loc.inference.load_localiser`` or ``function_localiser``).
        folder: where to write ``qc.png`` and the slice files; None = only the record.
        slab_mm: also write the mean of the slices within +-slab_mm of L3.
        name: case name for titles.
        truth: an annotation row (``l3_slice`` or ``l3_z_mm``, ``negative``) to compare with.
        level: the level whose axial slice is extracted (a level the model locates; ``L3``
            by default).

    Raises:
        InputError: ``level`` is not one the model locates.

    Returns:
        The record (keys of :data:`RESULT_COLUMNS` except name/input/seconds/backend/warnings).
    """
    if level not in model_levels(localiser):
        raise InputError("--level", f"the model locates {', '.join(model_levels(localiser))} "
                                    f"(label.levels of its training), not {level}")
    outputs, decision, geom = localise(ct, localiser)
    return localisation_record(ct, localiser, outputs, decision, geom, folder, slab_mm, name, truth,
                               level)


def localisation_record(ct: CTVolume, localiser: Localiser, outputs: dict, decision, geom: CaseGeometry,
                        folder: Path | None = None, slab_mm: float | None = None,
                        name: str | None = None, truth: dict | None = None,
                        level: str = "L3") -> dict:
    """The record (and with ``folder``, the files) of one localised volume: what
    :func:`predict_volume` returns, from :func:`localise`'s output."""
    name = name or default_name(ct.path)
    seq, reason = getattr(decision, "sequence", None), decision.reason
    n = ct.geometry.n_slices
    rec: dict = {"status": decision.status, "message": reason,
                 "view": localiser.view,
                 "confidence": decision.confidence, "n_slices": n,
                 "slice_spacing_mm": ct.geometry.slice_spacing_mm}
    for view in ("frontal", "sagittal"):
        d = outputs[view].decision if view in outputs else None
        rec[f"{view}_status"] = d.status if d else ""
        rec[f"{view}_row"] = d.row if d else math.nan
        rec[f"{view}_slice"] = float(geom.file_index(d.row)) if d else math.nan
        rec[f"{view}_z_mm"] = float(geom.z_mm(d.row)) if d else math.nan
        rec[f"{view}_confidence"] = d.confidence if d else math.nan
    found = decision.status in ("found", "ambiguous")
    c_exact = float(geom.native_row(decision.row))
    c = int(min(max(round(c_exact), 0), n - 1))
    rec["l3_slice"] = int(round(ct.geometry.file_index(c))) if found else None
    rec["l3_slice_exact"] = float(geom.file_index(decision.row)) if found else math.nan
    rec["l3_z_mm"] = float(geom.z_mm(decision.row)) if found else math.nan
    ambiguous = decision.status == "ambiguous"
    rec["second_slice"] = float(geom.file_index(decision.second_row)) if ambiguous else math.nan
    rec["second_z_mm"] = float(geom.z_mm(decision.second_row)) if ambiguous else math.nan
    rec["second_confidence"] = decision.second_confidence if ambiguous else math.nan
    rec.update(_truth_fields(truth, ct, rec))
    # every level the sequence found (NaN for the others, and for a single-L3 model)
    levels_z = {"L3": rec["l3_z_mm"]} if seq is not None and found else {}
    for k in LEVELS:
        if k == "L3":
            continue
        row = seq.row(k) if seq is not None else math.nan
        ok = math.isfinite(row)
        rec[f"{k.lower()}_slice"] = float(geom.file_index(row)) if ok else math.nan
        rec[f"{k.lower()}_z_mm"] = float(geom.z_mm(row)) if ok else math.nan
        rec[f"{k.lower()}_confidence"] = float(seq.confidence[seq.levels.index(k)]) if ok else math.nan
        if ok:
            levels_z[k] = rec[f"{k.lower()}_z_mm"]
    rec["sequence_confidence"] = seq.sequence_confidence if seq is not None else math.nan
    rec["extracted_level"] = level
    if level != "L3":
        # the asked level's slice instead of L3's; none when the sequence did not find it
        found = level in levels_z
        c = int(min(max(round(float(geom.native_row(seq.row(level)))), 0), n - 1)) if found else c
        if not found:
            rec["message"] = "; ".join(filter(None, [rec["message"], f"{level} not found"]))
    files = {"qc_png": None, "axial_png": None, "axial_nifti": None, "slab_nifti": None,
             "dicom_file": None}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        l3_found = decision.status in ("found", "ambiguous")
        write_pictures(folder, name, ct, outputs, decision, geom, localiser.threshold,
                       rec["l3_z_mm"] if l3_found else None, rec["second_z_mm"] if ambiguous else None,
                       decision.status, levels_z, fused=localiser.view == FUSED)
        files["qc_png"] = "qc.png"
        if found:
            files.update(write_slice_outputs(ct, c, folder, slab_mm, stem=level.lower()))
    rec.update(files)
    return rec


def _truth_fields(truth: dict | None, ct: CTVolume, rec: dict) -> dict:
    if truth is None:
        return {"true_slice": math.nan, "true_z_mm": math.nan, "error_mm": math.nan}
    c_true = annotation_to_canonical_row({**truth, "path": ct.path}, ct.geometry)
    if not math.isfinite(c_true):
        return {"true_slice": math.nan, "true_z_mm": math.nan, "error_mm": math.nan}
    z_true = float(ct.geometry.z_mm(c_true))
    err = abs(rec["l3_z_mm"] - z_true) if math.isfinite(rec["l3_z_mm"]) else math.nan
    return {"true_slice": float(ct.geometry.file_index(c_true)), "true_z_mm": z_true,
            "error_mm": err}


def _empty_record(scan: ScanInput) -> dict:
    rec = {k: math.nan for k in RESULT_COLUMNS}
    rec.update(name=scan.name, input=scan.path, message="", warnings="", backend="", view="",
               frontal_status="", sagittal_status="", l3_slice=None)
    for k in ("qc_png", "axial_png", "axial_nifti", "slab_nifti", "dicom_file"):
        rec[k] = None
    return rec


def predict_scan(scan: ScanInput, localiser: Localiser, out_dir: Path | None,
                 slab_mm: float | None = None, level: str = "L3", ct: CTVolume | None = None) -> dict:
    """Read, check and localise one scan; write its folder and ``result.json`` (none when
    ``out_dir`` is None: the record only). ``ct``: the scan already read (``scan.path`` is then
    not read again). Never raises for a bad scan: the record's ``status`` is ``error`` and
    ``message`` says why."""
    t0 = time.perf_counter()
    rec = _empty_record(scan)
    rec["backend"] = localiser.backend
    folder = Path(out_dir) / scan.name if out_dir is not None else None
    notes: list[str] = []
    try:
        if ct is None:
            ct, findings = read_ct(scan.path, series_uid=scan.series_uid)  # not a CT: raises
        else:
            findings = checked_ct(ct)
        notes += [f.problem for f in findings]
        rec.update(predict_volume(ct, localiser, folder, slab_mm, scan.name, scan.truth, level))
    except InputError as exc:
        rec.update(status="error", message=exc.problem)
    except MemoryError:
        rec.update(status="error", message="out of memory while processing this scan")
    except Exception as exc:  # a cohort must go on; the row and the debug log keep the reason
        log.debug("%s", traceback.format_exc())
        rec.update(status="error", message=f"{type(exc).__name__}: {exc}")
    rec["warnings"] = "; ".join(dict.fromkeys(notes))
    rec["seconds"] = time.perf_counter() - t0
    if folder is None:
        return rec
    for k in ("qc_png", "axial_png", "axial_nifti", "slab_nifti", "dicom_file"):
        if rec.get(k):
            rec[k] = f"{scan.name}/{rec[k]}"
    write_text(folder / "result.json", json.dumps(_jsonable(rec), indent=1, ensure_ascii=False))
    return rec


def _jsonable(rec: dict) -> dict:
    out = {}
    for k in RESULT_COLUMNS:
        v = rec.get(k)
        if isinstance(v, (float, np.floating)):
            v = float(v) if math.isfinite(v) else None
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    return out


def read_record(path: Path) -> dict | None:
    """A scan's saved ``result.json`` as a record, or None when unreadable. JSON's null is NaN
    again where the record holds numbers, None where it holds a slice index or a file."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    empty = _empty_record(ScanInput("", ""))
    return {k: (math.nan if v is None and isinstance(empty.get(k, math.nan), float) else v)
            for k, v in rec.items()}


def _done_record(scan: ScanInput, out_dir: Path) -> dict | None:
    """The saved record of a scan finished in an earlier run (not an error), else None."""
    rec = read_record(out_dir / scan.name / "result.json")
    if rec and rec.get("status") in ("found", "not_found", "ambiguous") and rec.get("input") == scan.path:
        return rec
    return None


def _same_model(out_dir: Path, localiser: Localiser) -> bool:
    """Whether ``out_dir``'s results were made by this localiser (models, weights, folds,
    decoders, threshold: ``model.json``); if not, resuming would mix two models' results."""
    try:
        before = json.loads((out_dir / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("[PREDICT] %s has no %s (made before l3loc recorded it): resuming without "
                    "checking that the same model made its results", out_dir, MODEL_FILE)
        return True
    except (OSError, ValueError):
        before = None
    if before == json.loads(json.dumps(localiser.fingerprint())):
        return True
    log.warning("[PREDICT] --resume: the results in %s were made by another model or threshold "
                "(%s); predicting every scan again", out_dir, MODEL_FILE)
    return False


def run_prediction(scans: Sequence[ScanInput], localiser: Localiser, out_dir: str | os.PathLike,
                   slab_mm: float | None = None, resume: bool = False, overwrite: bool = False,
                   progress: bool = False, command: str = "", level: str = "L3",
                   shard: dict | None = None) -> list[dict]:
    """Predict every scan; write ``results.csv``, ``index.html`` and ``run.json`` in ``out_dir``.

    ``results.csv`` and ``index.html`` are rewritten after every scan, so an interrupted cohort
    leaves a complete table of what was done.

    Args:
        scans: from :func:`list_inputs`.
        localiser: the models.
        out_dir: output root (created).
        slab_mm: also write the mean of +-slab_mm around L3.
        resume: skip scans whose ``result.json`` from an earlier run says found/not_found/
            ambiguous (errors are retried), if the same model and threshold made them
            (``model.json``); otherwise every scan is predicted again.
        overwrite: redo every scan even if results exist.
        progress: show a progress bar.
        command: the command line, for ``run.json``.
        level: whose axial slice to extract (``--level``; a level the model locates).
        shard: ``{"k", "n", "cohort_size"}`` when ``scans`` are share k of n of a cohort
            (``--shard``; recorded in ``run.json`` for ``l3loc.shards.merge_predictions``).

    Raises:
        InputError: ``out_dir`` holds results and neither ``resume`` nor ``overwrite`` is set;
            ``level`` is not one the model locates.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if level not in model_levels(localiser):
        raise InputError("--level", f"the model locates {', '.join(model_levels(localiser))} "
                                    f"(label.levels of its training), not {level}")
    if (out_dir / "results.csv").exists() and not (resume or overwrite):
        raise InputError(out_dir, "holds results of an earlier run; use --resume to skip the scans "
                                  "done, --overwrite to redo them, or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = resume and not overwrite and _same_model(out_dir, localiser)
    write_text(out_dir / MODEL_FILE, json.dumps(localiser.fingerprint(), indent=1))
    t0 = time.time()
    import paddle

    run = {"l3loc": l3loc.__version__, "paddle": paddle.__version__,
           "python": sys.version.split()[0], "platform": platform.platform(),
           "device": localiser.device, "command": command,
           "model_id": localiser.model_id or None, "models": localiser.source,
           "views": {v: list(vm.folds) for v, vm in localiser.views.items()},
           "backend": localiser.backend, "threshold": localiser.threshold,
           "threshold_source": localiser.threshold_source, "notes": localiser.notes,
           "slab_mm": slab_mm, "n_scans": len(scans), "shard": shard, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    records, skipped = [], 0
    bar = tqdm(scans, desc="predict", unit="scan", disable=not progress)
    for scan in bar:
        rec = _done_record(scan, out_dir) if resume else None
        if rec is not None:
            skipped += 1
        else:
            rec = predict_scan(scan, localiser, out_dir, slab_mm, level)
            log_level = logging.WARNING if rec["status"] == "error" else logging.DEBUG
            log.log(log_level, "[PREDICT] %s: %s %s", scan.name, rec["status"], rec["message"])
        records.append(rec)
        bar.set_postfix({s: sum(r["status"] == s for r in records) for s in OUT_STATUSES})
        write_table(out_dir / "results.csv", [_jsonable(r) for r in records], RESULT_COLUMNS)
        write_index_html(out_dir / "index.html", records, localiser.threshold)
    counts = {s: sum(r["status"] == s for r in records) for s in OUT_STATUSES}
    run.update(counts=counts, skipped=skipped, seconds=time.time() - t0)
    write_text(out_dir / "run.json", json.dumps(run, indent=1, ensure_ascii=False))
    write_table(out_dir / "results.csv", [_jsonable(r) for r in records], RESULT_COLUMNS)
    write_index_html(out_dir / "index.html", records, localiser.threshold)
    log.info("[PREDICT] %d scans (%s; %d skipped as done) in %.1f s -> %s", len(records),
             ", ".join(f"{n} {s}" for s, n in counts.items() if n), skipped, run["seconds"],
             out_dir / "results.csv")
    return records
