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
vertebra away; both are reported) or ``error`` (``message`` says why). ``l3_slice`` is the
nearest slice in the file's own indexing (0-based along its superior-inferior voxel axis, as a
viewer shows it; for a DICOM series, the index in the series as SimpleITK sorts it, and
``l3_slice.dcm`` is that file), ``l3_slice_exact`` the fractional position, ``l3_z_mm`` the world
z (mm, +superior) of the prediction. Not found: no slice, no z.

One failing scan never stops a cohort: its row says why. Every file is written atomically.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

import l3loc
from l3loc.atomic import atomic_path, write_table, write_text
from l3loc.decode import Decision, classify, decode_profile, fuse_profiles, row_profile
from l3loc.errors import InputError
from l3loc.inference import Localiser
from l3loc.io.annotations import (EXTENT_COLUMNS, POSITION_COLUMNS, annotation_to_canonical_row,
                                   default_name)
from l3loc.io.ct_checks import checked_ct, read_ct
from l3loc.io.geometry import CTVolume, axis_assignment
from l3loc.io.volume import VOLUME_EXTENSIONS, write_volume
from l3loc.levels import LEVELS, level_decision
from l3loc.case_geometry import CaseGeometry
from l3loc.preprocess import preprocess_volume
from l3loc.report import write_axial_png, write_qc_png
from l3loc.review import write_index_html, write_review_data

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


@dataclass(frozen=True)
class ScanInput:
    """One scan to process: its case name, path, and optional DICOM series and truth."""

    name: str
    path: str
    series_uid: str | None = None
    truth: dict | None = None  # an annotation row (l3_slice or l3_z_mm, negative), if given


# ----------------------------------------------------------------------------- inputs


def _is_dicom_dir(folder: Path) -> bool:
    import SimpleITK as sitk

    if not any(p.is_file() and not p.name.lower().endswith(VOLUME_EXTENSIONS + (".csv",))
               for p in folder.iterdir()):
        return False
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _safe_name(name: str) -> str:
    """A folder name from a case name: path separators and control characters replaced; spaces
    and non-ASCII letters kept (they are legal in file names and the user knows their cases)."""
    name = re.sub(r"[\\/\x00-\x1f]", "_", name).strip()
    return ("_" + name) if name.startswith(".") else (name or "scan")


def _csv_inputs(csv_path: Path) -> list[ScanInput]:
    """A CSV with a ``path`` column (optional ``name``, ``series_uid``; an annotation CSV with
    ``l3_slice``/``l3_z_mm`` adds the truth). Relative paths are relative to the CSV's folder."""
    import pandas as pd

    from l3loc.io.annotations import level_columns, read_annotations

    try:
        header = pd.read_csv(csv_path, nrows=0, encoding="utf-8-sig").columns
    except (OSError, ValueError) as exc:
        raise InputError(csv_path, f"not a readable CSV table ({exc})") from None
    if any(c in header for c in POSITION_COLUMNS):
        df = read_annotations(csv_path, check_paths=False)
        keep = [df.attrs["position"], "negative", "csv_line", *(c for c in EXTENT_COLUMNS if c in df),
                *(c for c in level_columns(df.attrs["position"]).values() if c in df and
                  c != df.attrs["position"])]
        return [ScanInput(r["name"], r["path"], r["series_uid"] or None, {k: r[k] for k in keep})
                for _, r in df.iterrows()]
    if "path" not in header:
        raise InputError(csv_path, f"no 'path' column (header: {list(header)})")
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    out = []
    for i, r in df.iterrows():
        text = r["path"].strip()
        if not text:
            raise InputError(csv_path, f"line {i + 2}: empty path")
        p = Path(text).expanduser()
        p = p if p.is_absolute() else csv_path.parent / p
        out.append(ScanInput(r.get("name", "").strip() or default_name(p), str(p),
                             r.get("series_uid", "").strip() or None))
    return out


def list_inputs(paths: Sequence[str | os.PathLike]) -> list[ScanInput]:
    """Expand the command line's inputs into scans.

    Each path may be a scan file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ... or a ``.dcm``
    of a series), a DICOM series folder, a folder holding many scans (volume files and DICOM
    series folders, searched recursively), or a ``.csv`` list. Case names are made unique by
    appending ``_2``, ``_3``... in input order.

    Raises:
        InputError: a path that does not exist, or a folder without any scan.
    """
    scans: list[ScanInput] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(p, "does not exist")
        if p.is_file() and p.name.lower().endswith(".csv"):
            scans += _csv_inputs(p)
        elif p.is_file():
            scans.append(ScanInput(default_name(p), str(p)))
        elif _is_dicom_dir(p):
            scans.append(ScanInput(p.name, str(p)))
        else:
            found = []
            for folder, dirs, files in os.walk(p):
                dirs.sort()
                folder = Path(folder)
                found += [ScanInput(default_name(folder / f), str(folder / f)) for f in sorted(files)
                          if f.lower().endswith(VOLUME_EXTENSIONS) and not f.startswith(".")]
                if folder != p and _is_dicom_dir(folder):
                    found.append(ScanInput(folder.name, str(folder)))
            if not found:
                raise InputError(p, "no scans found (looked for " + ", ".join(VOLUME_EXTENSIONS)
                                    + " files and DICOM series folders)")
            scans += found
    seen: dict[str, int] = {}
    unique = []
    for s in scans:
        base = _safe_name(s.name)
        n = seen.get(base.lower(), 0) + 1
        seen[base.lower()] = n
        unique.append(ScanInput(base if n == 1 else f"{base}_{n}", s.path, s.series_uid, s.truth))
    return unique


# ----------------------------------------------------------------------------- localisation


@dataclass
class ViewOutput:
    """One view of one scan: native MIP, processed geometry, profile and decision."""

    geometry: CaseGeometry
    native_mip_hu: np.ndarray
    profile: np.ndarray   # decoded (smoothed) row profile [n_rows]
    decision: object      # l3loc.decode.Decision


def _classify(profile: np.ndarray, cfg: dict, threshold: float):
    ev = cfg["eval"]
    return classify(profile, float(cfg["preprocess"]["spacing_mm"]), threshold,
                    ev["ambiguity_ratio"], ev["min_separation_mm"],
                    subpixel=ev["decoder"] == "profile")


def model_levels(localiser: Localiser) -> tuple[str, ...]:
    """The levels the localiser's models locate (``label.levels``; ("L3",) for a single-L3 model)."""
    found = {tuple(vm.cfg["label"].get("levels", ["L3"])) for vm in localiser.views.values()}
    if len(found) != 1:
        raise ValueError(f"views trained with different label.levels cannot be fused: {found}")
    return found.pop()


def decide_maps(maps: dict, localiser: Localiser) -> tuple[dict, Decision]:
    """From each view's confidence map(s) to the decision, as prediction makes it.

    Each view's L3 channel is decoded and classified; two views are fused (row-wise mean of the
    decoded profiles). A model with one channel per level (``label.levels``) then decodes the
    level sequence on the views' mean raw row profiles and takes L3 from it
    (``l3loc.levels.level_decision``: ambiguous with a reason when the sequence is not a normal
    spine or the L3 channel disagrees).

    Args:
        maps: view -> the view model's ``confidence_map`` of its processed image ([H, W], or
            [levels, H, W]); the views' processed rows are the same slices.
        localiser: whose view models made the maps.

    Returns:
        (view -> (decoded L3 profile, its Decision), the final Decision: fused when two views, a
        ``LevelDecision`` for a model with level channels).
    """
    levels = model_levels(localiser)
    per_view, level_profiles = {}, []
    for view, prob in maps.items():
        vm = localiser.views[view]
        stack = prob if prob.ndim == 3 else prob[None]
        dec = decode_profile(row_profile(stack[levels.index("L3")], vm.col_range),
                             vm.cfg["eval"]["decoder"], vm.spacing_mm, vm.cfg["eval"]["smooth_mm"])
        per_view[view] = (dec.profile, _classify(dec.profile, vm.cfg, localiser.threshold))
        level_profiles.append(np.stack([row_profile(m, vm.col_range) for m in stack]))
    views = list(per_view)
    cfg = localiser.views[views[0]].cfg
    if len(views) == 1:
        decision = per_view[views[0]][1]
    else:
        if len({localiser.views[v].spacing_mm for v in views}) != 1:
            raise ValueError("views trained at different pixel sizes cannot be fused")
        decision = _classify(fuse_profiles([per_view[v][0] for v in views]), cfg,
                             localiser.threshold)
    if len(levels) > 1:
        decision = level_decision(np.mean(level_profiles, axis=0), levels, decision,
                                  float(cfg["preprocess"]["spacing_mm"]), cfg["eval"]["smooth_mm"],
                                  localiser.threshold)
    return per_view, decision


def localise(ct: CTVolume, localiser: Localiser, view_maps: dict | None = None
             ) -> tuple[dict, object, CaseGeometry]:
    """Run every view of ``localiser`` on ``ct`` and decide (:func:`decide_maps`).

    Args:
        view_maps: a dict kept across the localisers of one experiment on one scan (external
            evaluation scores the frontal, sagittal and fused models): a view's preprocessed
            image and map are computed once per view, folds and backend, not once per localiser.

    Returns:
        (view -> ViewOutput, the final Decision (fused when two views; a LevelDecision for a
        model with level channels), the geometry of the processed rows, shared by the views).
    """
    view_maps = {} if view_maps is None else view_maps
    cases, maps = {}, {}
    for view, vm in localiser.views.items():
        key = (view, tuple(vm.folds), getattr(vm.maps, "backend", ""))
        if key not in view_maps:
            case = preprocess_volume(ct, view, cfg=vm.preprocess)
            view_maps[key] = (case, vm.maps.confidence_map(case.image))
        cases[view], maps[view] = view_maps[key]
    per_view, decision = decide_maps(maps, localiser)
    outputs = {v: ViewOutput(cases[v].geometry, cases[v].native_hu, *per_view[v]) for v in maps}
    return outputs, decision, next(iter(outputs.values())).geometry


# ----------------------------------------------------------------------------- outputs


def slice_origin_xy_mm(ct: CTVolume, c: int) -> tuple[float, float]:
    """World (LPS) x, y in mm of canonical voxel (c, 0, 0): the anterior-right corner of slice c.

    For files read from disk this follows the file's origin and direction; a volume made in
    memory (no ``origin_lps_mm`` in ``meta``) gets (0, 0).
    """
    meta = ct.meta
    if "origin_lps_mm" not in meta or "direction" not in meta:
        return 0.0, 0.0
    file_axis, flip, _ = axis_assignment(meta["direction"])
    size = meta["file_size_ijk"]
    spacing = np.empty(3)
    idx = np.zeros(3)
    for m, a in enumerate(file_axis):
        spacing[a] = ct.spacing_mm[m]
        if m == 0:
            idx[a] = ct.geometry.file_index(c)
        else:
            idx[a] = size[a] - 1 if flip[m] else 0
    d = np.asarray(meta["direction"], dtype=np.float64).reshape(3, 3)
    world = np.asarray(meta["origin_lps_mm"], dtype=np.float64) + d @ (idx * spacing)
    return float(world[0]), float(world[1])


def write_slice_outputs(ct: CTVolume, c: int, folder: Path, slab_mm: float | None,
                        stem: str = "l3") -> dict:
    """The L3 slice (canonical index ``c``) as PNG + one-slice NIfTI, the slab, the DICOM file;
    files named ``<stem>_axial.png`` etc. (``stem`` = the extracted level, e.g. ``l1``).

    Returns:
        Record fields: ``axial_png``, ``axial_nifti``, ``slab_nifti``, ``dicom_file`` (paths
        relative to the output root's parent folder of ``folder``; None when not written).
    """
    sp_s, sp_r, sp_c = ct.spacing_mm
    z = float(ct.geometry.z_mm(c))
    xy = slice_origin_xy_mm(ct, c)
    files = {"axial_png": None, "axial_nifti": None, "slab_nifti": None, "dicom_file": None}
    write_axial_png(folder / f"{stem}_axial.png", ct.hu[c], (sp_r, sp_c))
    write_volume(folder / f"{stem}_axial.nii.gz", ct.hu[c:c + 1], (sp_s, sp_r, sp_c), z, xy)
    files["axial_png"], files["axial_nifti"] = f"{stem}_axial.png", f"{stem}_axial.nii.gz"
    if slab_mm:
        half = int(math.floor(slab_mm / ct.geometry.slice_spacing_mm + 1e-9))
        lo, hi = max(c - half, 0), min(c + half + 1, ct.geometry.n_slices)
        slab = ct.hu[lo:hi].astype(np.float32).mean(axis=0)
        # the slab's thickness is the span of the slices averaged; its centre is the L3 slice
        write_volume(folder / f"{stem}_slab.nii.gz", slab[None], ((hi - lo) * sp_s, sp_r, sp_c), z, xy)
        write_axial_png(folder / f"{stem}_slab.png", slab, (sp_r, sp_c))
        files["slab_nifti"] = f"{stem}_slab.nii.gz"
    dicom_files = ct.meta.get("dicom_files") or []
    if dicom_files:
        with atomic_path(folder / f"{stem}_slice.dcm") as tmp:
            shutil.copyfile(dicom_files[c], tmp)
        files["dicom_file"] = f"{stem}_slice.dcm"
    return files


def _pictures(folder: Path, name: str, ct: CTVolume, outputs: dict, decision, geometry,
              threshold: float, l3_z: float | None, second_z: float | None, status: str,
              levels_z: dict | None = None) -> None:
    """``qc.png`` and the review page's files of one scan (the same MIPs and profiles)."""
    z_top, z_bottom = float(ct.geometry.z_mm(0)), float(ct.geometry.z_mm(ct.geometry.n_slices - 1))
    mips = {view: (out.native_mip_hu, out.geometry.col_spacing_mm) for view, out in outputs.items()}
    if len(outputs) == 1:
        (view, out), = outputs.items()
        profiles = {view: out.profile}
    else:
        profiles = {v: o.profile for v, o in outputs.items()}
        profiles["fused"] = fuse_profiles(list(profiles.values()))
    z_rows = np.asarray(geometry.z_mm(np.arange(geometry.n_rows)), dtype=np.float64)
    where = f"slice {_slice_text(l3_z, ct)}" if l3_z is not None else "no L3"
    title = f"{name}: {status}, confidence {decision.confidence:.2f}, {where}"
    write_qc_png(folder / "qc.png", title, {v: (*m, (z_top, z_bottom)) for v, m in mips.items()},
                 profiles, z_rows, threshold, l3_z, second_z, levels_z_mm=levels_z)
    write_review_data(folder, name, ct.path, ct.meta.get("series_uid"), ct.geometry, mips, profiles, z_rows, second_z,
                      levels_z)


def _slice_text(z: float, ct: CTVolume) -> str:
    """'<file slice> (z <z> mm)' of the slice nearest to ``z``."""
    c = int(round(float(ct.geometry.canonical_from_z(z))))
    return f"{int(round(ct.geometry.file_index(c)))} (z {z:.1f} mm)"


def _num(x) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else math.nan


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
    seq, reason = getattr(decision, "sequence", None), getattr(decision, "reason", "")
    n = ct.geometry.n_slices
    rec: dict = {"status": decision.status, "message": reason,
                 "view": "both" if len(outputs) == 2 else next(iter(outputs)),
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
        _pictures(folder, name, ct, outputs, decision, geom, localiser.threshold,
                    rec["l3_z_mm"] if l3_found else None, rec["second_z_mm"] if ambiguous else None,
                    decision.status, levels_z)
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
