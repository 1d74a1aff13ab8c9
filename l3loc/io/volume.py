"""CT volumes from NIfTI, NRRD, MetaImage and DICOM series, in l3loc's canonical orientation.

Every volume comes back as ``hu[slice, row, col]`` with axis 0 = axial slices superior → inferior,
axis 1 = anterior → posterior, axis 2 = patient right → left, whatever the voxel order of the file
(RAS, LPS, PIR, ...). A :class:`VolumeGeometry` remembers how canonical slice ``c`` maps back to the
file's own slice index along its superior–inferior voxel axis and to world z.

World z: SimpleITK reports every format in DICOM/ITK patient coordinates (LPS: +x left,
+y posterior, +z superior). NIfTI's RAS coordinates negate x and y only, so the z of an LPS point
and the z of the same point in RAS coincide: ``z_mm`` here is both, +z = superior.

Axis matching uses the direction matrix directly (each file voxel axis is assigned to the world
axis it is most aligned with); it agrees with ``sitk.DICOMOrient(image, "LPI")``, whose letters
name the direction each axis points *to* (checked in ``tests/test_volume.py``). For an oblique
direction (e.g. gantry tilt) the slice axis is the one most aligned with world z, z is taken at the
centre of each slice, and a warning says by how many degrees the axes are tilted.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import locale
import math
import os
import shutil
import struct
import tempfile
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from l3loc.atomic import atomic_path
from l3loc.errors import InputError

#: File name endings read as single-file volumes (DICOM is read from a folder or a ``.dcm`` file).
VOLUME_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Endings ``write_volume`` can write atomically (``.mhd``/``.nhdr`` need a second data file).
WRITABLE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha")
#: A whole-body CT at 0.5 mm has ~4000 slices; beyond this the scan is probably not what the user
#: meant (or will need a lot of memory), so we warn but go on.
MANY_SLICES = 2000
#: Axes tilted by more than this (degrees) count as oblique: at 250 mm from the centre of a slice a
#: 0.1° tilt moves z by 0.44 mm, under half of a 1 mm slice.
OBLIQUE_TOLERANCE_DEG = 0.1
#: Largest allowed spread of DICOM slice gaps, relative to the median gap.
GAP_TOLERANCE = 0.01

# Canonical axis m points along world (LPS) axis _CANON_WORLD_AXIS[m] in direction _CANON_SIGN[m]:
# slices → -z (inferior), rows → +y (posterior), columns → +x (left).
_CANON_WORLD_AXIS = (2, 1, 0)
_CANON_SIGN = (-1.0, 1.0, 1.0)
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# ITK prints its own multi-line warnings to stderr (e.g. for a folder without DICOM); every such
# case is checked here and reported once, as an InputError or a Python warning, naming the file.
sitk.ProcessObject_SetGlobalWarningDisplay(False)


@dataclass(frozen=True)
class VolumeGeometry:
    """Maps canonical slice indices to the file's own slice indices and to world z (mm, +superior).

    Attributes:
        n_slices: number of axial slices (length of canonical axis 0).
        file_si_axis: the file's superior–inferior voxel axis in ITK/NIfTI (i, j, k) order:
            0 = i, 1 = j, 2 = k. (In ``sitk.GetArrayFromImage`` order that is numpy axis ``2 - a``.)
        file_si_reversed: True when the file's index along that axis increases towards superior,
            i.e. opposite to canonical order, so ``file_index = n_slices - 1 - c``.
        z_first_mm: world z of canonical slice 0 (the most superior slice), at the slice centre.
        slice_spacing_mm: world-z distance between consecutive slices (> 0); equals the voxel
            spacing along the slice axis unless the direction matrix is oblique.
    """

    n_slices: int
    file_si_axis: int
    file_si_reversed: bool
    z_first_mm: float
    slice_spacing_mm: float

    def __post_init__(self):
        if int(self.n_slices) != self.n_slices or self.n_slices < 1:
            raise ValueError(f"n_slices must be a positive integer, got {self.n_slices!r}")
        if self.file_si_axis not in (0, 1, 2):
            raise ValueError(f"file_si_axis must be 0, 1 or 2, got {self.file_si_axis!r}")
        if not (math.isfinite(self.slice_spacing_mm) and self.slice_spacing_mm > 0):
            raise ValueError(f"slice_spacing_mm must be finite and > 0, got {self.slice_spacing_mm!r}")
        if not math.isfinite(self.z_first_mm):
            raise ValueError(f"z_first_mm must be finite, got {self.z_first_mm!r}")

    def file_index(self, c):
        """Canonical slice index (float or array) → the file's index along its SI voxel axis."""
        c = np.asarray(c, dtype=np.float64)
        return _scalar_or_array((self.n_slices - 1) - c if self.file_si_reversed else c)

    def canonical_index(self, file_idx):
        """The file's index along its SI voxel axis (float or array) → canonical slice index."""
        # the map is its own inverse (identity or a flip)
        return self.file_index(file_idx)

    def z_mm(self, c):
        """Canonical slice index (float or array) → world z in mm (+superior)."""
        c = np.asarray(c, dtype=np.float64)
        return _scalar_or_array(self.z_first_mm - c * self.slice_spacing_mm)

    def canonical_from_z(self, z_mm):
        """World z in mm (float or array) → canonical slice index (float, may lie outside the scan)."""
        z_mm = np.asarray(z_mm, dtype=np.float64)
        return _scalar_or_array((self.z_first_mm - z_mm) / self.slice_spacing_mm)

    def file_index_from_z(self, z_mm):
        """World z in mm (float or array) → the file's index along its SI voxel axis."""
        return self.file_index(self.canonical_from_z(z_mm))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (plain Python numbers); inverse of :meth:`from_dict`."""
        return {"n_slices": int(self.n_slices), "file_si_axis": int(self.file_si_axis),
                "file_si_reversed": bool(self.file_si_reversed),
                "z_first_mm": float(self.z_first_mm), "slice_spacing_mm": float(self.slice_spacing_mm)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VolumeGeometry":
        """Rebuild from :meth:`to_dict` output; missing or unknown keys raise ValueError."""
        expected = {"n_slices", "file_si_axis", "file_si_reversed", "z_first_mm", "slice_spacing_mm"}
        if set(d) != expected:
            raise ValueError(f"geometry dict needs exactly the keys {sorted(expected)}, got {sorted(d)}")
        return cls(n_slices=int(d["n_slices"]), file_si_axis=int(d["file_si_axis"]),
                   file_si_reversed=bool(d["file_si_reversed"]), z_first_mm=float(d["z_first_mm"]),
                   slice_spacing_mm=float(d["slice_spacing_mm"]))


def _scalar_or_array(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


@dataclass
class CTVolume:
    """A CT scan in canonical orientation.

    Attributes:
        hu: [slices S→I, rows A→P, cols R→L] in HU; int16 when all values are integers that fit,
            else float32.
        spacing_mm: voxel spacing (slice, row, col) in mm.
        geometry: canonical slice ↔ file slice index ↔ world z.
        path: the file or DICOM folder it was read from.
        meta: ``format`` ('nifti', 'nrrd', 'metaimage', 'dicom'), ``orientation`` (the file's
            own code, letters naming where each of i, j, k points, e.g. 'RAS', 'PIR'),
            ``series_uid`` (DICOM, else None), ``dicom_files`` (DICOM: one file per canonical
            slice, in canonical order; empty when the series is not stacked along the SI axis),
            ``other_series_uids``, ``modality`` and ``image_type`` (DICOM only),
            ``oblique_deg``, ``file_size_ijk``, ``origin_lps_mm``,
            ``direction``.
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    geometry: VolumeGeometry
    path: str
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# reading

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
            without DICOM, or a DICOM series with missing or unevenly spaced slices.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    fmt = volume_format(path)
    meta: dict[str, Any] = {"format": fmt, "series_uid": None, "dicom_files": [],
                            "other_series_uids": []}
    if fmt == "dicom":
        image, files_k, uid, others = _read_dicom_series(path, series_uid)
        meta.update(series_uid=uid, other_series_uids=others, **_dicom_kind(files_k[0]))
    else:
        if series_uid is not None:
            raise InputError(path, "series_uid only applies to DICOM series")
        _check_file_header(path, fmt)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as e:
            raise InputError(path, _itk_problem(e)) from None
        files_k = []
    image = _as_3d_scalar(image, path)
    hu, spacing_mm, geometry, orient = _to_canonical(image, path)
    meta.update(orient)
    if files_k and geometry.file_si_axis == 2:
        meta["dicom_files"] = [files_k[int(geometry.file_index(c))] for c in range(geometry.n_slices)]
    return CTVolume(hu=hu, spacing_mm=spacing_mm, geometry=geometry, path=str(path), meta=meta)


def _itk_problem(e: RuntimeError) -> str:
    msg = str(e)
    if "Zero-valued spacing" in msg:
        return "voxel spacing is zero; spacing must be > 0 mm"
    if "Unable to determine ImageIO reader" in msg:
        return "cannot be read as an image (corrupt file, or not the format its name says)"
    # ITK messages start with the C++ source location; keep the last informative line
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    return "corrupt or truncated file (reader said: " + (lines[-1] if lines else "nothing") + ")"


def _check_file_header(path: Path, fmt: str) -> None:
    """Catch what ITK lets through silently: NIfTI truncation (read as zeros) and spacing <= 0
    (ITK turns a NIfTI pixdim of 0 into 1 mm and a negative MetaImage spacing into a positive one).
    """
    if fmt == "nifti":
        _check_nifti(path)
        return
    # MetaImage: 'ElementSpacing = 1 1 2'; NRRD: 'spacings: 1 1 2' (space directions are vectors)
    keys, sep = ({"elementspacing", "elementsize"}, "=") if fmt == "metaimage" else ({"spacings"}, ":")
    with open(path, "rb") as f:
        head = f.read(65536)
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1")
        if not line.strip() or line.lower().startswith("elementdatafile"):
            break  # end of the header; binary data may follow
        if sep not in line:
            continue
        key, value = line.split(sep, 1)
        if key.strip().lower() not in keys:
            continue
        try:
            values = [float(t) for t in value.split()]
        except ValueError:
            continue  # not numbers: leave the verdict to ITK's reader
        # NRRD writes nan for non-spatial axes
        if any(not s > 0 for s in values if not math.isnan(s)):
            raise InputError(path, f"voxel spacing {value.strip()} is zero or negative; spacing "
                                   "must be > 0 mm")


def _check_nifti(path: Path) -> None:
    """Header sanity, full length, and (for float data) finite values, read straight from the file.

    ITK's NIfTI reader fills a truncated file with zeros and turns NaN into 0 without a word, so
    both are checked here on the raw bytes (one extra pass over the file).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(path, f"corrupt NIfTI file ({e})") from None
    if len(head) < 348:
        raise InputError(path, "truncated NIfTI file (header shorter than 348 bytes)")
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise InputError(path, "not a NIfTI file (bad header size field)")
    if size == 348:
        dims = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
        pixdim = struct.unpack(endian + "8f", head[76:108])
        vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
    else:
        if len(head) < 540:
            raise InputError(path, "truncated NIfTI-2 file (header shorter than 540 bytes)")
        datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
        dims = struct.unpack(endian + "8q", head[16:80])
        pixdim = struct.unpack(endian + "8d", head[104:168])
        vox_offset = struct.unpack(endian + "q", head[168:176])[0]
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8:
        raise InputError(path, f"corrupt NIfTI header (dim[0] = {ndim}, bitpix = {bitpix})")
    spatial = pixdim[1:1 + min(ndim, 3)]
    if any(not (s > 0) for s in spatial):
        raise InputError(path, f"voxel spacing {tuple(round(s, 4) for s in spatial)} is zero or "
                               "negative; spacing must be > 0 mm")
    expected = vox_offset + int(np.prod(dims[1:ndim + 1], dtype=np.int64)) * (bitpix // 8)
    # NIfTI datatype codes 16 = float32, 64 = float64
    float_dtype = {16: np.dtype(endian + "f4"), 64: np.dtype(endian + "f8")}.get(datatype)
    if float_dtype is None and opener is gzip.open and _gzip_isize(path) == expected % 2**32:
        # integer data: the gzip trailer's length field (uncompressed size mod 2**32) matching is
        # enough, since a cut file ends in arbitrary bytes (a 2**-32 chance of a false match); this
        # skips a decompression pass that costs ~40 % of the read time. A mismatch (also from
        # multi-member gzip files) falls through to the exact count below.
        return
    actual, n_bad, carry = 0, 0, b""
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 22):
                start = max(0, vox_offset - actual)
                actual += len(chunk)
                if float_dtype is None or start >= len(chunk):
                    continue
                data = carry + chunk[start:]
                usable = len(data) - len(data) % float_dtype.itemsize
                values = np.frombuffer(data[:usable], dtype=float_dtype)
                n_bad += int(values.size - np.count_nonzero(np.isfinite(values)))
                carry = data[usable:]
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(path, f"corrupt or truncated gzip data ({e})") from None
    if actual < expected:
        raise InputError(path, f"truncated NIfTI file: {actual} bytes of header and image data, "
                               f"{expected} expected")
    if n_bad:
        raise InputError(path, f"{n_bad} voxel values are NaN or infinite")


def _gzip_isize(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:  # 10-byte gzip header + 8-byte trailer
            return -1
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


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


def axis_assignment(
        direction: Sequence[float]) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], float]:
    """Match the file's voxel axes to the canonical axes.

    Args:
        direction: ITK direction matrix, 9 numbers row-major; column a is the LPS unit vector of
            voxel axis a (i, j, k).

    Returns:
        ``(file_axis, flip, oblique_deg)``: ``file_axis[m]`` is the voxel axis (0=i, 1=j, 2=k) of
        canonical axis m (0 slices S→I, 1 rows A→P, 2 cols R→L), ``flip[m]`` says whether that voxel
        axis runs opposite to the canonical one, ``oblique_deg`` is the largest angle between a
        voxel axis and the world axis it was matched to.
    """
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    # the permutation with the largest total alignment; 6 candidates, so brute force is simplest
    best = max(itertools.permutations(range(3)),
               key=lambda perm: sum(abs(d[_CANON_WORLD_AXIS[m], perm[m]]) for m in range(3)))
    cosines = [d[_CANON_WORLD_AXIS[m], best[m]] for m in range(3)]
    flip = tuple(bool(np.sign(cos) != _CANON_SIGN[m]) for m, cos in enumerate(cosines))
    oblique_deg = max(math.degrees(math.acos(min(1.0, abs(cos)))) for cos in cosines)
    return tuple(int(a) for a in best), flip, oblique_deg


def _to_canonical(image: sitk.Image, path: Path):
    size = image.GetSize()
    spacing = image.GetSpacing()
    direction = image.GetDirection()
    file_axis, flip, oblique_deg = axis_assignment(direction)
    if oblique_deg > OBLIQUE_TOLERANCE_DEG:
        warnings.warn(f"{path}: the voxel axes are tilted {oblique_deg:.2f}° from the patient axes "
                      "(oblique or gantry-tilted scan); slices are taken along the axis closest to "
                      "superior–inferior and z at each slice centre", stacklevel=3)
    si = file_axis[0]
    n_slices = size[si]
    if n_slices > MANY_SLICES:
        warnings.warn(f"{path}: {n_slices} slices (more than {MANY_SLICES}); this needs "
                      f"{np.prod(size) * 2 / 1e9:.1f} GB or more of memory", stacklevel=3)

    arr = sitk.GetArrayViewFromImage(image)  # numpy axes (k, j, i): voxel axis a is numpy axis 2-a
    arr = np.transpose(arr, [2 - a for a in file_axis])
    arr = arr[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
    hu = _hu_array(arr, path)

    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    # world z of the centre of file slice t along the SI axis: z0 + dz * t
    dz = d[2, si] * spacing[si]
    z0 = origin[2] + sum(d[2, a] * spacing[a] * (size[a] - 1) / 2 for a in range(3) if a != si)
    reversed_ = bool(flip[0])
    z_first = z0 + dz * ((n_slices - 1) if reversed_ else 0)
    geometry = VolumeGeometry(n_slices=int(n_slices), file_si_axis=int(si), file_si_reversed=reversed_,
                              z_first_mm=float(z_first), slice_spacing_mm=float(abs(dz)))
    spacing_mm = tuple(float(spacing[a]) for a in file_axis)
    orient = {"orientation": sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction),
              "oblique_deg": float(oblique_deg), "file_size_ijk": tuple(int(s) for s in size),
              "origin_lps_mm": tuple(float(o) for o in origin),
              "direction": tuple(float(x) for x in direction)}
    return hu, spacing_mm, geometry, orient


def _hu_array(arr: np.ndarray, path: Path) -> np.ndarray:
    """Contiguous int16 copy when every value is an integer in int16 range, else float32."""
    i16 = np.iinfo(np.int16)
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            n_bad = int(arr.size - np.count_nonzero(finite))
            raise InputError(path, f"{n_bad} voxel values are NaN or infinite")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= i16.min and hi <= i16.max and np.array_equal(arr, np.round(arr)):
            return np.ascontiguousarray(arr, dtype=np.int16)
        return np.ascontiguousarray(arr, dtype=np.float32)
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= i16.min and hi <= i16.max:
        return np.ascontiguousarray(arr, dtype=np.int16)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _read_dicom_series(path: Path, series_uid: str | None):
    """Pick and read one series; returns (image, files in k order, uid, other uids)."""
    if path.is_file():
        folder = path.parent
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            file_uid = reader.GetMetaData("0020|000e").strip()
        except RuntimeError as e:
            raise InputError(path, _itk_problem(e)) from None
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
    _check_dicom_positions(path, names)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(path, f"DICOM series {uid}: " + _itk_problem(e)) from None
    return image, names, uid, [u for u in uids if u != uid]


def _dicom_kind(name: str) -> dict[str, str]:
    """``modality`` (0008,0060: CT, PT, MR, ...) and ``image_type`` (0008,0008, e.g.
    ``ORIGINAL\\PRIMARY\\LOCALIZER`` for a scout) of a series, from one file's header ('' if
    absent): they tell a PET or a scout from the CT series of the same study."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    reader.ReadImageInformation()  # read before by _check_dicom_positions: it does not fail here
    return {key: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for key, tag in (("modality", "0008|0060"), ("image_type", "0008|0008"))}


def _check_dicom_positions(path: Path, names: list[str]) -> None:
    """Missing, duplicate or unevenly spaced slices (gaps along the slice normal) → InputError."""
    reader = sitk.ImageFileReader()
    positions, normal = [], None
    for name in names:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            if normal is None:
                iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(iop[:3], iop[3:])
        except (RuntimeError, ValueError) as e:
            raise InputError(path, f"{Path(name).name}: unreadable DICOM header or missing "
                                   f"ImagePositionPatient/ImageOrientationPatient ({e})") from None
        positions.append(float(np.dot(ipp, normal)))
    gaps = np.abs(np.diff(positions))

    def between(i: int) -> str:
        return f"between {Path(names[i]).name} and {Path(names[i + 1]).name}"

    if gaps.min() < 1e-3:
        raise InputError(path, f"two slices at the same position ({between(int(np.argmin(gaps)))}); "
                               "the series mixes acquisitions or holds duplicates")
    median = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - median)))
    if abs(gaps[worst] - median) > GAP_TOLERANCE * median:
        raise InputError(path, f"uneven slice spacing: a gap of {gaps[worst]:.3f} mm {between(worst)}, "
                               f"typical gap {median:.3f} mm (missing slice or mixed series)")


# ---------------------------------------------------------------------------------------------
# writing

def _check_canonical(hu: np.ndarray, spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    if hu.ndim != 3 or min(hu.shape) < 1:
        raise ValueError(f"hu must be a 3-D array [slice, row, col], got shape {hu.shape}")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or any(not (s > 0 and math.isfinite(s)) for s in spacing):
        raise ValueError(f"spacing_mm must be three positive numbers (slice, row, col), got {spacing_mm}")
    return spacing


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
    spacing = _check_canonical(hu, spacing_mm)
    image = _canonical_to_image(hu, spacing, z_first_mm, origin_xy_mm)
    compress = path.name.lower().endswith((".nrrd", ".mha"))
    with atomic_path(path, overwrite=overwrite) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


def new_uid() -> str:
    """A fresh DICOM UID from a random UUID (the standard '2.25.' root, no registration needed)."""
    return "2.25." + str(uuid.uuid4().int)


def write_dicom_series(folder: str | os.PathLike, hu: np.ndarray, spacing_mm: Sequence[float],
                       z_first_mm: float = 0.0, series_uid: str | None = None,
                       rescale_slope: float = 1.0, rescale_intercept: float = -1024.0,
                       patient_name: str = "L3LOC^SYNTHETIC", origin_xy_mm: Sequence[float] = (0.0, 0.0),
                       study_uid: str | None = None, series_description: str = "l3loc synthetic CT",
                       modality: str = "CT") -> list[Path]:
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

    Returns:
        The written files in canonical slice order.
    """
    spacing = _check_canonical(hu, spacing_mm)
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

    sp_s, sp_r, sp_c = spacing
    date, clock = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    series_tags = {
        "0008|0016": _CT_IMAGE_STORAGE, "0008|0060": modality, "0008|0020": date, "0008|0030": clock,
        "0008|0021": date, "0008|0031": clock, "0008|103e": series_description,
        "0010|0010": patient_name, "0010|0020": patient_name.replace("^", "_"),
        "0020|000d": study_uid, "0020|000e": series_uid, "0020|0010": "1", "0020|0011": "1",
        "0020|0037": "1\\0\\0\\0\\1\\0", "0018|0050": repr(sp_s), "0018|0088": repr(sp_s),
        "0028|1053": repr(float(rescale_slope)), "0028|1052": repr(float(rescale_intercept)),
        "0028|1054": "HU",
        # signed 16-bit storage; GDCM converts the float HU through the inverse rescale
        "0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1",
    }
    with _kept_locale():
        return _write_dicom_slices(folder, hu, names, series_uid, series_tags, z_first_mm, sp_s,
                                   sp_r, sp_c, origin_xy_mm)


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
    tilt = f"  (oblique {oblique:.2f}°)" if oblique > OBLIQUE_TOLERANCE_DEG else ""
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
