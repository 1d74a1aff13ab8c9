"""The files of one localised scan: the extracted axial slice (PNG, one-slice NIfTI, the slab,
the original DICOM file), ``qc.png`` and the review page's data."""
from __future__ import annotations

import math
import shutil
import textwrap
from pathlib import Path

import numpy as np

from l3loc.atomic import atomic_path
from l3loc.decode import fuse_profiles
from l3loc.io.geometry import CTVolume, axis_assignment
from l3loc.io.volume import write_volume
from l3loc.report import write_axial_png, write_qc_png
from l3loc.review import write_review_data
from l3loc.runs import FUSED


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


def write_pictures(folder: Path, name: str, ct: CTVolume, outputs: dict, decision, geometry,
              threshold: float, l3_z: float | None, second_z: float | None, status: str,
              levels_z: dict | None = None, fused: bool = True) -> None:
    """``qc.png`` and the review page's files of one scan (the same MIPs and profiles; with
    two views and ``fused``, their fused profile too: the one the decision was made on)."""
    z_top, z_bottom = float(ct.geometry.z_mm(0)), float(ct.geometry.z_mm(ct.geometry.n_slices - 1))
    mips = {view: (out.native_mip_hu, out.geometry.col_spacing_mm) for view, out in outputs.items()}
    if len(outputs) == 1:
        (view, out), = outputs.items()
        profiles = {view: out.profile}
    else:
        profiles = {v: o.profile for v, o in outputs.items()}
        if fused:
            profiles[FUSED] = fuse_profiles(list(profiles.values()))
    z_rows = np.asarray(geometry.z_mm(np.arange(geometry.n_rows)), dtype=np.float64)
    where = f"slice {_slice_text(l3_z, ct)}" if l3_z is not None else "no L3"
    title = f"{name}: {status}, confidence {decision.confidence:.2f}, {where}"
    if decision.reason:   # why the row is ambiguous (or has no L3), on the picture one checks
        title += "\n" + textwrap.fill(decision.reason, 80)
    write_qc_png(folder / "qc.png", title, {v: (*m, (z_top, z_bottom)) for v, m in mips.items()},
                 profiles, z_rows, threshold, l3_z, second_z, levels_z_mm=levels_z)
    write_review_data(folder, name, ct.path, ct.meta.get("series_uid"), ct.geometry, mips, profiles, z_rows, second_z,
                      levels_z)


def _slice_text(z: float, ct: CTVolume) -> str:
    """'<file slice> (z <z> mm)' of the slice nearest to ``z``."""
    c = int(round(float(ct.geometry.canonical_from_z(z))))
    return f"{int(round(ct.geometry.file_index(c)))} (z {z:.1f} mm)"
