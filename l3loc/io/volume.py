"""CT volumes from NIfTI, NRRD, MetaImage and DICOM series, in l3loc's canonical orientation.

Every volume comes back as ``hu[slice, row, col]`` with axis 0 = axial slices superior → inferior,
axis 1 = anterior → posterior, axis 2 = patient right → left, whatever the voxel order of the file;
the orientation and slice geometry live in :mod:`l3loc.io.geometry`, the byte-level checks of
single files in :mod:`l3loc.io.headers`, DICOM series in :mod:`l3loc.io.dicom`.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from l3loc.atomic import atomic_path
from l3loc.errors import InputError
from l3loc.io.dicom import dicom_kind, read_dicom_series
from l3loc.io.deshear import FileGrid, axis_aligned, through_the_spine
from l3loc.io.geometry import (OBLIQUE_TOLERANCE_DEG, CTVolume, axis_assignment, check_canonical,
                               on_file_slices, to_canonical)
from l3loc.io.headers import check_file_header, itk_problem

#: File name endings read as single-file volumes (DICOM is read from a folder or a ``.dcm`` file).
VOLUME_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Endings ``write_volume`` can write atomically (``.mhd``/``.nhdr`` need a second data file).
WRITABLE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha")


def volume_format(path: str | os.PathLike) -> str:
    """'nifti', 'nrrd', 'metaimage' or 'dicom' for a path (a folder is DICOM); else InputError."""
    p = Path(path)
    if p.is_dir():
        return "dicom"
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".mha", ".mhd")):
        return "metaimage"
    if name.endswith(".dcm"):
        return "dicom"
    raise InputError(path, "unsupported file type; l3loc reads " + ", ".join(VOLUME_EXTENSIONS)
                     + " files and DICOM series folders (or one .dcm file of the series)")


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> CTVolume:
    """Read a CT scan into canonical orientation.

    Args:
        path: ``.nii``/``.nii.gz``, ``.nrrd``/``.nhdr``, ``.mha``/``.mhd``, a DICOM series folder,
            or one ``.dcm`` file (its whole series in the same folder is read).
        series_uid: for a folder holding several series, which one to read; by default the one
            with the most slices (with a warning naming the others).

    Returns:
        The volume; ``hu`` has shape (n_slices, n_rows, n_cols).

    Raises:
        InputError: missing path, unsupported type, corrupt or truncated file, not a 3-D volume,
            a single slice, non-finite voxels, spacing <= 0, an unknown ``series_uid``, a folder
            without DICOM, or a DICOM series with duplicate slices or a hole of several missing
            ones (one missing slice, or slices unevenly spaced, are resampled onto even gaps
            with a warning).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    fmt = volume_format(path)
    meta: dict[str, Any] = {"format": fmt, "series_uid": None, "dicom_files": [],
                            "other_series_uids": []}
    file_slices = None   # a DICOM series resampled onto even gaps: its slices' file indices
    if fmt == "dicom":
        image, files_k, uid, others, file_slices = read_dicom_series(path, series_uid)
        meta.update(series_uid=uid, other_series_uids=others, **dicom_kind(files_k[0]))
    else:
        if series_uid is not None:
            raise InputError(path, "series_uid only applies to DICOM series")
        check_file_header(path, fmt)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as e:
            raise InputError(path, itk_problem(e)) from None
        files_k = []
    image = _as_3d_scalar(image, path)
    file_grid, file_orientation = None, None
    oblique_deg = axis_assignment(image.GetDirection())[2]
    if oblique_deg > OBLIQUE_TOLERANCE_DEG:
        warnings.warn(f"{path}: the slices are tilted {oblique_deg:.2f}° from the patient axes "
                      "(gantry-tilted or oblique scan): resampled onto axis-aligned slices before "
                      "the projections (de-sheared); a slice number names the file's slice through "
                      "the spine at that height", stacklevel=2)
        file_grid = FileGrid.of(image)
        file_orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
            image.GetDirection())
        image = axis_aligned(image, file_grid)
    hu, spacing_mm, geometry, orient = to_canonical(image, path)
    meta.update(orient)
    if file_grid is not None:
        hu, geometry = through_the_spine(hu, spacing_mm, geometry, image, file_grid)
        meta.update(oblique_deg=float(oblique_deg), orientation=file_orientation, desheared=True)
    if file_slices is not None:
        geometry = on_file_slices(geometry, file_slices)
    if files_k and geometry.file_si_axis == 2:
        last = len(files_k) - 1
        meta["dicom_files"] = [files_k[min(max(int(round(float(geometry.file_index(c)))), 0), last)]
                               for c in range(geometry.n_slices)]
    return CTVolume(hu=hu, spacing_mm=spacing_mm, geometry=geometry, path=str(path), meta=meta)


def _as_3d_scalar(image: sitk.Image, path: Path) -> sitk.Image:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"has {image.GetNumberOfComponentsPerPixel()} values per voxel "
                               "(colour or vector image); a CT volume has one")
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise InputError(path, f"is a {dim}-D image of size {image.GetSize()}; a 3-D CT volume is "
                               "needed")
    size = image.GetSize()
    if min(size) < 2:
        raise InputError(path, f"has a single slice (size {size} voxels); a CT volume with several "
                               "slices is needed")
    spacing = image.GetSpacing()
    if any(not (s > 0 and math.isfinite(s)) for s in spacing):
        raise InputError(path, f"voxel spacing {spacing} is not positive; spacing must be > 0 mm")
    return image


# ---------------------------------------------------------------------------------------------
# writing

def _canonical_to_image(hu: np.ndarray, spacing_mm, z_first_mm: float, origin_xy_mm) -> sitk.Image:
    """The file layout of a typical scanner: LPS identity direction, k = 0 the most inferior slice."""
    sp_s, sp_r, sp_c = spacing_mm
    image = sitk.GetImageFromArray(np.ascontiguousarray(hu[::-1]))
    image.SetSpacing((sp_c, sp_r, sp_s))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    image.SetOrigin((float(origin_xy_mm[0]), float(origin_xy_mm[1]),
                     float(z_first_mm) - (hu.shape[0] - 1) * sp_s))
    return image


def write_volume(path: str | os.PathLike, hu: np.ndarray, spacing_mm: Sequence[float],
                 z_first_mm: float = 0.0, origin_xy_mm: Sequence[float] = (0.0, 0.0),
                 overwrite: bool = True) -> Path:
    """Write a canonical array so that :func:`read_volume` returns it unchanged.

    The file gets an LPS identity direction (k = 0 the most inferior slice), like most scanners.

    Args:
        path: ``.nii``, ``.nii.gz``, ``.nrrd`` or ``.mha`` (NRRD and MHA are gzip-compressed).
        hu: [slices S→I, rows A→P, cols R→L]; its dtype is kept (int16 for HU).
        spacing_mm: (slice, row, col) in mm, > 0. NIfTI stores float32, so choose values exact in
            float32 (e.g. 0.75, 2.5) when an exact round trip matters.
        z_first_mm: world z of canonical slice 0 (the top slice), +superior.
        origin_xy_mm: LPS (x, y) in mm of the centre of voxel [:, 0, 0] (anterior-right corner).
        overwrite: if False, refuse to replace an existing file.

    Returns:
        The path written.
    """
    path = Path(path)
    if not path.name.lower().endswith(WRITABLE_EXTENSIONS):
        raise ValueError(f"{path}: write_volume writes {', '.join(WRITABLE_EXTENSIONS)}")
    spacing = check_canonical(hu, spacing_mm)
    image = _canonical_to_image(hu, spacing, z_first_mm, origin_xy_mm)
    compress = path.name.lower().endswith((".nrrd", ".mha"))
    with atomic_path(path, overwrite=overwrite) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


# ---------------------------------------------------------------------------------------------
# description

def describe_volume(vol: CTVolume) -> str:
    """A few lines for humans: shape, spacing, orientation, HU range and slice geometry."""
    g, hu, sp = vol.geometry, vol.hu, vol.spacing_mm
    p1, p50, p99 = np.percentile(hu, [1, 50, 99])
    last = g.n_slices - 1
    axis = "ijk"[g.file_si_axis]
    direction = "increases superiorly, reversed" if g.file_si_reversed else "increases inferiorly"
    oblique = vol.meta.get("oblique_deg", 0.0)
    tilt = f"  (tilted {oblique:.2f}°, resampled onto axis-aligned slices)" if vol.meta.get("desheared") else ""
    lines = [
        f"path          {vol.path}",
        f"format        {vol.meta.get('format')}  orientation {vol.meta.get('orientation')}{tilt}",
        f"shape         {hu.shape[0]} slices x {hu.shape[1]} rows x {hu.shape[2]} cols  ({hu.dtype})",
        f"spacing_mm    slice {sp[0]:g}, row {sp[1]:g}, col {sp[2]:g}",
        f"extent_mm     {hu.shape[0] * sp[0]:.1f} x {hu.shape[1] * sp[1]:.1f} x {hu.shape[2] * sp[2]:.1f}",
        f"HU            min {hu.min():g}, p1 {p1:g}, median {p50:g}, p99 {p99:g}, max {hu.max():g}",
        f"slices        file axis {axis} ({direction})",
        f"  canonical 0    -> file {axis}={g.file_index(0):g}, z {g.z_mm(0):.2f} mm (top)",
        f"  canonical {last:<4d} -> file {axis}={g.file_index(last):g}, z {g.z_mm(last):.2f} mm (bottom)",
        f"  slice step {g.slice_spacing_mm:g} mm in z",
    ]
    if vol.meta.get("series_uid"):
        lines.append(f"series_uid    {vol.meta['series_uid']}")
    if vol.meta.get("other_series_uids"):
        lines.append(f"other series  {', '.join(vol.meta['other_series_uids'])}")
    return "\n".join(lines)
