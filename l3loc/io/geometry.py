"""Canonical orientation: the geometry of a CT volume and how a file's voxel axes map onto it.

Every volume inside l3loc is ``hu[slice, row, col]`` with axis 0 = axial slices superior →
inferior, axis 1 = anterior → posterior, axis 2 = patient right → left, whatever the voxel order of
the file (RAS, LPS, PIR, ...). A :class:`VolumeGeometry` remembers how canonical slice ``c`` maps
back to the file's own slice index along its superior–inferior voxel axis and to world z.

World z: SimpleITK reports every format in DICOM/ITK patient coordinates (LPS: +x left,
+y posterior, +z superior). NIfTI's RAS coordinates negate x and y only, so the z of an LPS point
and the z of the same point in RAS coincide: ``z_mm`` here is both, +z = superior.

Axis matching uses the direction matrix directly (each file voxel axis is assigned to the world
axis it is most aligned with); it agrees with ``sitk.DICOMOrient(image, "LPI")``, whose letters
name the direction each axis points *to* (checked in ``tests/test_geometry.py``). An oblique or
gantry-tilted file is first resampled onto axis-aligned slices (``l3loc.io.deshear``); should an
oblique direction reach :func:`to_canonical`, the slice axis is the one most aligned with world z
and z is taken at the centre of each slice.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from l3loc.errors import InputError

#: A whole-body CT at 0.5 mm has ~4000 slices; beyond this the scan is probably not what the user
#: meant (or will need a lot of memory), so we warn but go on.
MANY_SLICES = 2000
#: Axes tilted by more than this (degrees) count as oblique, and the volume is resampled onto
#: axis-aligned slices (``l3loc.io.deshear``): at 250 mm from the centre of a slice a 0.1° tilt
#: moves z by 0.44 mm, under half of a 1 mm slice.
OBLIQUE_TOLERANCE_DEG = 0.1

# Canonical axis m points along world (LPS) axis _CANON_WORLD_AXIS[m] in direction _CANON_SIGN[m]:
# slices → -z (inferior), rows → +y (posterior), columns → +x (left).
_CANON_WORLD_AXIS = (2, 1, 0)
_CANON_SIGN = (-1.0, 1.0, 1.0)


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
        file_index_knots: for a volume whose slices are not the file's own (a gantry-tilted or
            oblique file resampled onto axis-aligned slices, ``l3loc.io.deshear``; a DICOM series
            with a missing slice resampled onto even gaps, ``l3loc.io.dicom``): pairs
            ``(canonical index, file index)``, canonical indices increasing, between and beyond
            which the file's (fractional) slice index is linear; for a tilted file it is the
            file's slice through the spine at that height. None (every other volume): canonical
            slices are the file's, in order or reversed.
    """

    n_slices: int
    file_si_axis: int
    file_si_reversed: bool
    z_first_mm: float
    slice_spacing_mm: float
    file_index_knots: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        if int(self.n_slices) != self.n_slices or self.n_slices < 1:
            raise ValueError(f"n_slices must be a positive integer, got {self.n_slices!r}")
        if self.file_si_axis not in (0, 1, 2):
            raise ValueError(f"file_si_axis must be 0, 1 or 2, got {self.file_si_axis!r}")
        if not (math.isfinite(self.slice_spacing_mm) and self.slice_spacing_mm > 0):
            raise ValueError(f"slice_spacing_mm must be finite and > 0, got {self.slice_spacing_mm!r}")
        if not math.isfinite(self.z_first_mm):
            raise ValueError(f"z_first_mm must be finite, got {self.z_first_mm!r}")
        if self.file_index_knots is not None:
            knots = np.asarray(self.file_index_knots, dtype=np.float64)
            if (knots.ndim != 2 or knots.shape[0] < 2 or knots.shape[1] != 2 or not np.isfinite(knots).all()
                    or not (np.diff(knots[:, 0]) > 0).all() or not (
                        (np.diff(knots[:, 1]) > 0).all() or (np.diff(knots[:, 1]) < 0).all())):
                raise ValueError("file_index_knots must be two or more finite (canonical, file) pairs, both "
                                 f"strictly monotonic, got {self.file_index_knots!r}")

    def file_index(self, c):
        """Canonical slice index (float or array) → the file's index along its SI voxel axis."""
        c = np.asarray(c, dtype=np.float64)
        if self.file_index_knots is not None:
            return _scalar_or_array(_piecewise_linear(c, *np.asarray(self.file_index_knots).T))
        return _scalar_or_array((self.n_slices - 1) - c if self.file_si_reversed else c)

    def canonical_index(self, file_idx):
        """The file's index along its SI voxel axis (float or array) → canonical slice index."""
        if self.file_index_knots is not None:
            cs, fs = np.asarray(self.file_index_knots).T
            order = np.argsort(fs)
            return _scalar_or_array(_piecewise_linear(np.asarray(file_idx, dtype=np.float64),
                                                      fs[order], cs[order]))
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
        """JSON-able dict (plain Python numbers); inverse of :meth:`from_dict`. ``file_index_knots``
        only appears when set."""
        d = {"n_slices": int(self.n_slices), "file_si_axis": int(self.file_si_axis),
             "file_si_reversed": bool(self.file_si_reversed),
             "z_first_mm": float(self.z_first_mm), "slice_spacing_mm": float(self.slice_spacing_mm)}
        if self.file_index_knots is not None:
            d["file_index_knots"] = [[float(c), float(f)] for c, f in self.file_index_knots]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VolumeGeometry":
        """Rebuild from :meth:`to_dict` output; missing or unknown keys raise ValueError."""
        expected = {"n_slices", "file_si_axis", "file_si_reversed", "z_first_mm", "slice_spacing_mm"}
        if not expected <= set(d) <= expected | {"file_index_knots"}:
            raise ValueError(f"geometry dict needs exactly the keys {sorted(expected)} (and "
                             f"optionally file_index_knots), got {sorted(d)}")
        knots = d.get("file_index_knots")
        return cls(n_slices=int(d["n_slices"]), file_si_axis=int(d["file_si_axis"]),
                   file_si_reversed=bool(d["file_si_reversed"]), z_first_mm=float(d["z_first_mm"]),
                   slice_spacing_mm=float(d["slice_spacing_mm"]),
                   file_index_knots=None if knots is None else tuple((float(c), float(f)) for c, f in knots))


def on_file_slices(geometry: VolumeGeometry, file_slices: np.ndarray) -> VolumeGeometry:
    """The geometry of a volume whose slice axis was resampled from the file's (DICOM slices
    onto even gaps: ``file_slices[m]`` is the file's fractional slice index of the resampled
    slice m, increasing), restated in the file's own slice indices: one knot per file slice."""
    file_slices = np.asarray(file_slices, dtype=np.float64)
    ks = np.arange(math.ceil(file_slices[0] - 1e-9), math.floor(file_slices[-1] + 1e-9) + 1, dtype=np.float64)
    c = np.asarray(geometry.canonical_index(np.interp(ks, file_slices, np.arange(len(file_slices)))))
    order = np.argsort(c)
    return dataclasses.replace(
        geometry, file_si_reversed=bool(ks[order][-1] < ks[order][0]),
        file_index_knots=tuple((float(a), float(b)) for a, b in zip(c[order], ks[order])))


def _piecewise_linear(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``np.interp`` through the knots (xs increasing), continued linearly beyond the end knots."""
    y = np.interp(x, xs, ys)
    before, after = x < xs[0], x > xs[-1]
    y = np.where(before, ys[0] + (x - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0]), y)
    return np.where(after, ys[-1] + (x - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]), y)


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
            ``oblique_deg`` (the file's tilt), ``file_size_ijk``, ``origin_lps_mm``,
            ``direction`` (of the grid ``hu`` lies on), ``desheared`` (True when a tilted
            file was resampled onto axis-aligned slices, ``l3loc.io.deshear``).
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    geometry: VolumeGeometry
    path: str
    meta: dict[str, Any] = field(default_factory=dict)


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


def to_canonical(image: sitk.Image, path: Path):
    size = image.GetSize()
    spacing = image.GetSpacing()
    direction = image.GetDirection()
    file_axis, flip, oblique_deg = axis_assignment(direction)
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


def check_canonical(hu: np.ndarray, spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    if hu.ndim != 3 or min(hu.shape) < 1:
        raise ValueError(f"hu must be a 3-D array [slice, row, col], got shape {hu.shape}")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or any(not (s > 0 and math.isfinite(s)) for s in spacing):
        raise ValueError(f"spacing_mm must be three positive numbers (slice, row, col), got {spacing_mm}")
    return spacing
