"""DICOM series: picking and checking one series in a folder, and writing a canonical array as one.

Reading goes through :func:`l3loc.io.volume.read_volume`, which hands a folder (or one ``.dcm``
file) to :func:`read_dicom_series` and orients the result like any other format.
"""
from __future__ import annotations

import contextlib
import hashlib
import locale
import math
import os
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from l3loc.errors import InputError
from l3loc.io.geometry import check_canonical
from l3loc.io.headers import itk_problem

#: Spread of DICOM slice gaps, relative to the median gap, above which the slices are resampled
#: onto even gaps (a missing slice, or a slice moved).
GAP_TOLERANCE = 0.01
#: Largest gap, in median gaps, that is interpolated across: one missing slice leaves 2, a hole of
#: two or more (3 and up) is refused, since the anatomy in it (L3's body, a disc) is not there.
MAX_GAP_RATIO = 2.5
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def read_dicom_series(path: Path, series_uid: str | None):
    """Pick and read one series; returns (image, files in k order, uid, other uids, file
    slices): file slices is None, or for a series with uneven gaps resampled onto even ones,
    the file's (fractional) slice index of each slice of the image."""
    if path.is_file():
        folder = path.parent
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            file_uid = reader.GetMetaData("0020|000e").strip()
        except RuntimeError as e:
            raise InputError(path, itk_problem(e)) from None
        if series_uid is not None and series_uid != file_uid:
            raise InputError(path, f"belongs to series {file_uid}, not the requested {series_uid}")
        series_uid = file_uid
    else:
        folder = path
    uids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not uids:
        raise InputError(path, "no DICOM files found in this folder (subfolders are not searched)")
    files = {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in uids}
    if series_uid is None:
        uid = max(sorted(uids), key=lambda u: len(files[u]))
        if len(uids) > 1:
            warnings.warn(f"{path}: {len(uids)} DICOM series found; reading {uid} ({len(files[uid])} "
                          "files, the most); pass series_uid to choose another: "
                          + ", ".join(f"{u} ({len(files[u])})" for u in uids if u != uid), stacklevel=3)
    elif series_uid in files:
        uid = series_uid
    else:
        raise InputError(path, f"no DICOM series with uid {series_uid}; found "
                               + ", ".join(f"{u} ({len(files[u])} files)" for u in uids))
    names = files[uid]
    if len(names) < 2:
        raise InputError(path, f"DICOM series {uid} has a single slice ({Path(names[0]).name}); a "
                               "CT volume with several slices is needed")
    positions, uneven = _check_dicom_positions(path, names)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    # the true step from slice to slice (ImagePositionPatient), not the slice normal: a
    # gantry-tilted series is a sheared grid, which l3loc.io.deshear resamples
    reader.ForceOrthogonalDirectionOff()
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(path, f"DICOM series {uid}: " + itk_problem(e)) from None
    file_slices = None
    if uneven:
        warnings.warn(f"{path}: {uneven}; resampled onto even gaps (linear between neighbouring "
                      "slices); a slice number names the file's slice", stacklevel=3)
        image, file_slices = _even_slices(image, positions)
    return image, names, uid, [u for u in uids if u != uid], file_slices


def _even_slices(image: sitk.Image, positions: np.ndarray) -> tuple[sitk.Image, np.ndarray]:
    """A series with uneven gaps resampled onto even ones along its table direction.

    Returns:
        The image (the median gap, adjusted to span the series exactly; same first slice,
        direction and pixel type) and, per slice of it, the (fractional) index of the file's
        slice it lies at.
    """
    table = positions[-1] - positions[0]
    table /= np.linalg.norm(table)                          # the unit step from slice to slice
    along = (positions - positions[0]) @ table              # 0 .. length, increasing
    count = int(round(along[-1] / float(np.median(np.diff(along))))) + 1
    file_slices = np.interp(np.linspace(0.0, along[-1], count), along, np.arange(len(along)))
    voxels = sitk.GetArrayViewFromImage(image)              # (k, j, i)
    even = np.empty((count,) + voxels.shape[1:], dtype=voxels.dtype)
    for m, f in enumerate(file_slices):
        lo = min(int(f), len(along) - 2)
        w = f - lo
        mixed = voxels[lo] * (1.0 - w) + voxels[lo + 1] * w
        even[m] = np.rint(mixed) if np.issubdtype(even.dtype, np.integer) else mixed
    out = sitk.GetImageFromArray(even)
    out.SetOrigin(image.GetOrigin())
    spacing = list(image.GetSpacing())
    spacing[2] = float(along[-1] / (count - 1))
    out.SetSpacing(spacing)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    direction[:, 2] = table
    out.SetDirection(direction.ravel().tolist())
    return out, file_slices


def dicom_kind(name: str) -> dict[str, str]:
    """``modality`` (0008,0060: CT, PT, MR, ...) and ``image_type`` (0008,0008, e.g.
    ``ORIGINAL\\PRIMARY\\LOCALIZER`` for a scout) of a series, from one file's header ('' if
    absent): they tell a PET or a scout from the CT series of the same study."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    reader.ReadImageInformation()  # read before by _check_dicom_positions: it does not fail here
    return {key: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for key, tag in (("modality", "0008|0060"), ("image_type", "0008|0008"))}


def _check_dicom_positions(path: Path, names: list[str]) -> tuple[np.ndarray, str]:
    """Each slice's ImagePositionPatient (n, 3), and what is uneven about their gaps along the
    slice normal ('' when even). Duplicate positions or a hole of more than ``MAX_GAP_RATIO``
    typical gaps → InputError."""
    reader = sitk.ImageFileReader()
    positions, normal = [], None
    for name in names:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
            positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            if normal is None:
                iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(iop[:3], iop[3:])
        except (RuntimeError, ValueError) as e:
            raise InputError(path, f"{Path(name).name}: unreadable DICOM header or missing "
                                   f"ImagePositionPatient/ImageOrientationPatient ({e})") from None
    positions = np.asarray(positions, dtype=np.float64)
    gaps = np.abs(np.diff(positions @ normal))

    def between(i: int) -> str:
        return f"between {Path(names[i]).name} and {Path(names[i + 1]).name}"

    if gaps.min() < 1e-3:
        raise InputError(path, f"two slices at the same position ({between(int(np.argmin(gaps)))}); "
                               "the series mixes acquisitions or holds duplicates")
    median = float(np.median(gaps))
    widest = int(np.argmax(gaps))
    if gaps[widest] > MAX_GAP_RATIO * median:
        raise InputError(path, f"a gap of {gaps[widest]:.3f} mm {between(widest)}, typical gap "
                               f"{median:.3f} mm: slices are missing there (a hole of more than "
                               f"{MAX_GAP_RATIO:g} gaps is not interpolated), or the series mixes acquisitions")
    worst = int(np.argmax(np.abs(gaps - median)))
    if abs(gaps[worst] - median) <= GAP_TOLERANCE * median:
        return positions, ""
    return positions, (f"uneven slice spacing: a gap of {gaps[worst]:.3f} mm {between(worst)}, "
                       f"typical gap {median:.3f} mm (a missing slice?)")


def new_uid() -> str:
    """A fresh DICOM UID from a random UUID (the standard '2.25.' root, no registration needed)."""
    return "2.25." + str(uuid.uuid4().int)


def write_dicom_series(folder: str | os.PathLike, hu: np.ndarray, spacing_mm: Sequence[float],
                       z_first_mm: float = 0.0, series_uid: str | None = None,
                       rescale_slope: float = 1.0, rescale_intercept: float = -1024.0,
                       patient_name: str = "L3LOC^SYNTHETIC", origin_xy_mm: Sequence[float] = (0.0, 0.0),
                       study_uid: str | None = None, series_description: str = "l3loc synthetic CT",
                       modality: str = "CT", slice_thickness_mm: float | None = None,
                       gantry_tilt_deg: float = 0.0, tilt_pivot_y_mm: float = 0.0) -> list[Path]:
    """Write a canonical array as one axial CT series, one file per slice.

    Stored values are ``round((hu - rescale_intercept) / rescale_slope)`` as signed 16-bit, so
    HU must lie on that grid for an exact round trip. Instance number 1 is the top slice
    (canonical slice 0); ImageOrientationPatient is 1\\0\\0\\0\\1\\0 (rows to the patient's left,
    columns to posterior), ImagePositionPatient gives each slice's z.

    The series is built in a temporary folder; a new ``folder`` appears by one rename, into an
    existing one the files are moved one by one (so a second series can join a folder). Files
    are named ``<8 hex of the series uid>_<instance:04d>.dcm``; an existing name is an error.

    Args:
        folder: destination folder.
        hu: [slices S→I, rows A→P, cols R→L] in HU.
        spacing_mm: (slice, row, col) in mm.
        z_first_mm: world z of the top slice (+superior).
        series_uid: SeriesInstanceUID; a new one if None.
        rescale_slope, rescale_intercept: DICOM RescaleSlope / RescaleIntercept.
        patient_name: PatientName (also used as PatientID).
        origin_xy_mm: LPS (x, y) of the centre of voxel [:, 0, 0].
        study_uid: StudyInstanceUID; a new one if None.
        series_description: SeriesDescription.
        modality: Modality; another than CT (e.g. PT) makes the wrong series of a study, which
            ``l3loc.io.ct_checks`` must refuse.
        slice_thickness_mm: SliceThickness; the slice spacing if None (contiguous slices; more
            than the spacing for an overlapping reconstruction).
        gantry_tilt_deg: the array was acquired with the gantry tilted by this much (as
            ``l3loc.synth.acquisition.tilt`` makes it): row y of slice c lies at height
            ``z_c - (y - tilt_pivot_y_mm) tan(tilt)``. The files then say so, as a scanner's do:
            ImageOrientationPatient leans its columns by the tilt, the pixel spacing between
            rows is the row spacing / cos(tilt), ImagePositionPatient follows the table, and
            GantryDetectorTilt (0018,1120) holds the angle. 0 = untilted.
        tilt_pivot_y_mm: the LPS y (mm) at which a tilted slice lies at its own z_c.

    Returns:
        The written files in canonical slice order.
    """
    spacing = check_canonical(hu, spacing_mm)
    if not (rescale_slope > 0 and math.isfinite(rescale_slope)):
        raise ValueError(f"rescale_slope must be > 0, got {rescale_slope}")
    raw = (np.asarray(hu, dtype=np.float64) - rescale_intercept) / rescale_slope
    if not np.isfinite(raw).all() or raw.min() < -32768 or raw.max() > 32767:
        raise ValueError("hu does not fit signed 16-bit storage with rescale slope "
                         f"{rescale_slope} and intercept {rescale_intercept}")
    folder = Path(folder)
    series_uid = series_uid or new_uid()
    study_uid = study_uid or new_uid()
    tag = hashlib.sha1(series_uid.encode()).hexdigest()[:8]
    names = [f"{tag}_{c + 1:04d}.dcm" for c in range(hu.shape[0])]
    clashes = [n for n in names if (folder / n).exists()]
    if clashes:
        raise FileExistsError(f"{folder}: {clashes[0]} exists (refusing to overwrite)")

    if not abs(gantry_tilt_deg) < 60:   # gantries tilt up to about 30 degrees
        raise ValueError(f"gantry_tilt_deg must lie within +-60 degrees, got {gantry_tilt_deg}")
    sp_s, sp_r, sp_c = spacing
    tilt = math.radians(gantry_tilt_deg)
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)
    date, clock = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    series_tags = {
        "0008|0016": _CT_IMAGE_STORAGE, "0008|0060": modality, "0008|0020": date, "0008|0030": clock,
        "0008|0021": date, "0008|0031": clock, "0008|103e": series_description,
        "0010|0010": patient_name, "0010|0020": patient_name.replace("^", "_"),
        "0020|000d": study_uid, "0020|000e": series_uid, "0020|0010": "1", "0020|0011": "1",
        "0020|0037": f"1\\0\\0\\0\\{cos_t!r}\\{-sin_t!r}" if gantry_tilt_deg else "1\\0\\0\\0\\1\\0",
        "0018|1120": repr(float(gantry_tilt_deg)),
        "0018|0050": repr(float(slice_thickness_mm or sp_s)), "0018|0088": repr(sp_s),
        "0028|1053": repr(float(rescale_slope)), "0028|1052": repr(float(rescale_intercept)),
        "0028|1054": "HU",
        # signed 16-bit storage; GDCM converts the float HU through the inverse rescale
        "0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1",
    }
    with _kept_locale():
        # a tilted slice's first row (y of origin_xy_mm) lies above or below its z_c
        z_shift = -(float(origin_xy_mm[1]) - tilt_pivot_y_mm) * sin_t / cos_t
        return _write_dicom_slices(folder, hu, names, series_uid, series_tags, z_first_mm + z_shift,
                                   sp_s, sp_r / cos_t, sp_c, origin_xy_mm)


@contextlib.contextmanager
def _kept_locale():
    """GDCM's DICOM writer switches the process to the C locale and leaves it there, after which
    Python's default text encoding is ASCII (a non-ASCII path or report then fails): restore it."""
    saved = {cat: locale.setlocale(cat) for cat in (locale.LC_CTYPE, locale.LC_NUMERIC)}
    try:
        yield
    finally:
        for cat, value in saved.items():
            locale.setlocale(cat, value)


def _write_dicom_slices(folder: Path, hu, names, series_uid, series_tags, z_first_mm, sp_s, sp_r,
                        sp_c, origin_xy_mm) -> list[Path]:
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # otherwise the writer invents new Study/Series/SOP UIDs
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for c in range(hu.shape[0]):
            z = float(z_first_mm) - c * sp_s
            slice_img = sitk.GetImageFromArray(np.asarray(hu[c], dtype=np.float32))
            slice_img.SetSpacing((sp_c, sp_r))
            for key, value in series_tags.items():
                slice_img.SetMetaData(key, value)
            slice_img.SetMetaData("0008|0018", f"{series_uid}.{c + 1}" if len(series_uid) < 58
                                  else new_uid())
            slice_img.SetMetaData("0020|0013", str(c + 1))
            x_mm, y_mm = (float(v) for v in origin_xy_mm)
            slice_img.SetMetaData("0020|0032", f"{x_mm!r}\\{y_mm!r}\\{z!r}")
            slice_img.SetMetaData("0020|1041", repr(z))
            writer.SetFileName(str(tmp / names[c]))
            writer.Execute(slice_img)
        if not folder.exists():
            os.replace(tmp, folder)
        else:
            for n in names:
                os.replace(tmp / n, folder / n)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return [folder / n for n in names]
