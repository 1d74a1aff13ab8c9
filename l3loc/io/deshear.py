"""Gantry-tilted and oblique scans, resampled onto axis-aligned slices before anything else.

A gantry-tilted CT series is a stack of tilted slices: each slice plane leans about the
left-right axis while the table moves along z, so its voxel grid is sheared (DICOM keeps the
tilt in ImageOrientationPatient and the table positions in ImagePositionPatient). Read as an
ordinary stack its anatomy is sheared too: the vertebral arches 20-60 mm behind the bodies move
up or down by that distance x tan(tilt), about 12 mm at 20 degrees, and the frontal nets, which
read the arches, move L3 with them (benchmarks/README.md, twenty-sixth session). A volume whose
voxel axes are rotated (an oblique NIfTI) has the same problem. So such a volume is resampled
(trilinear, as Slicer and dcm2niix de-shear) onto a grid aligned with the patient axes, and

- its z range is cut to the heights at which the file's slices cover the spine, so that the
  scan's ends (``l3loc.decode``'s scan-end rule) are where the spine's coverage ends;
- each of its slices is mapped back to the file's slice that passes through the spine at that
  height (``VolumeGeometry.file_index_knots``): the slice number l3loc reports for a tilted
  series is the file slice that cuts the L3 body, not its arch.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from l3loc.io.geometry import _CANON_WORLD_AXIS, VolumeGeometry, axis_assignment
from l3loc.mip import mip, spine_lr_centre_px
from l3loc.preprocess import spine_ap_centre_px

#: Value of the resampled voxels outside the scanned volume: air.
AIR_HU = -1024.0
#: Pixel types kept through resampling (signed: air fits); others become float32.
_KEPT_PIXEL_TYPES = (sitk.sitkInt16, sitk.sitkInt32, sitk.sitkFloat32, sitk.sitkFloat64)


@dataclass(frozen=True)
class FileGrid:
    """Where a file's voxels lie: index (i, j, k) -> LPS point ``origin + matrix @ index``."""

    origin: np.ndarray
    matrix: np.ndarray       # direction (possibly sheared) times the spacing, column per voxel axis
    size: tuple[int, int, int]
    si_axis: int             # the voxel axis closest to superior-inferior

    @classmethod
    def of(cls, image: sitk.Image) -> "FileGrid":
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        return cls(origin=np.asarray(image.GetOrigin(), dtype=np.float64),
                   matrix=direction * np.asarray(image.GetSpacing(), dtype=np.float64),
                   size=tuple(int(s) for s in image.GetSize()),
                   si_axis=axis_assignment(image.GetDirection())[0][0])

    def index(self, x_mm: float, y_mm: float, z_mm) -> np.ndarray:
        """The file's (fractional) voxel indices (i, j, k) of the LPS points (x, y, z), shape
        (3, len(z))."""
        z = np.atleast_1d(np.asarray(z_mm, dtype=np.float64))
        points = np.stack([np.full_like(z, x_mm), np.full_like(z, y_mm), z])
        return np.linalg.solve(self.matrix, points - self.origin[:, None])


def axis_aligned(image: sitk.Image, grid: FileGrid) -> sitk.Image:
    """The volume (``grid`` = ``FileGrid.of(image)``) resampled onto an LPS axis-aligned grid that
    covers it (trilinear, air outside); along each patient axis the step that the file axis
    matched to it makes along that axis (a gantry tilt's slices keep their table increment, its
    rows their y pitch)."""
    file_axis = axis_assignment(image.GetDirection())[0]
    spacing = [0.0, 0.0, 0.0]
    for m, world in enumerate(_CANON_WORLD_AXIS):
        spacing[world] = float(abs(grid.matrix[world, file_axis[m]]))
    corners = grid.origin[:, None] + grid.matrix @ np.array(
        list(itertools.product(*[(0, s - 1) for s in grid.size])), dtype=np.float64).T
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    size = [int(math.floor((hi[w] - lo[w]) / spacing[w] + 1e-6)) + 1 for w in range(3)]
    resample = sitk.ResampleImageFilter()
    resample.SetOutputOrigin([float(v) for v in lo])
    resample.SetOutputSpacing(spacing)
    resample.SetOutputDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    resample.SetSize(size)
    resample.SetInterpolator(sitk.sitkLinear)
    resample.SetDefaultPixelValue(AIR_HU)
    kept = image.GetPixelID() in _KEPT_PIXEL_TYPES
    resample.SetOutputPixelType(image.GetPixelID() if kept else sitk.sitkFloat32)
    return resample.Execute(image)


def through_the_spine(hu: np.ndarray, spacing_mm, geometry: VolumeGeometry, aligned: sitk.Image,
                      file_grid: FileGrid) -> tuple[np.ndarray, VolumeGeometry]:
    """Cut a resampled canonical volume to the heights where the file covers the spine, and map
    its slices to the file's slices through the spine.

    Args:
        hu: canonical volume made from ``aligned`` (``to_canonical``; identity direction, so
            canonical column q is voxel i = q and row r is j = r).
        spacing_mm, geometry: its spacing and geometry from ``to_canonical``.
        aligned: the axis-aligned image (its origin and spacing place the voxels).
        file_grid: the file's own voxel grid.

    Returns:
        The cut volume and its geometry, with ``file_index_knots`` set (a line: two knots).
    """
    col = spine_lr_centre_px(hu, spacing_mm)
    row = spine_ap_centre_px(mip(hu, "sagittal", spacing_mm), spacing_mm[1])
    origin, spacing = aligned.GetOrigin(), aligned.GetSpacing()
    x_mm, y_mm = origin[0] + col * spacing[0], origin[1] + row * spacing[1]
    n = geometry.n_slices
    at_top, at_bottom = file_grid.index(x_mm, y_mm, [geometry.z_mm(0), geometry.z_mm(n - 1)]).T
    step = (at_bottom - at_top) / max(n - 1, 1)        # file voxels per canonical slice, per axis
    # canonical slices at whose height the spine lies inside the file (every index within
    # -0.5 .. size - 0.5); each index is linear in the slice, so this is one interval
    first, last = 0.0, float(n - 1)
    for a in range(3):
        lo, hi = -0.5, file_grid.size[a] - 0.5
        if abs(step[a]) < 1e-12:
            if not lo <= at_top[a] <= hi:
                first, last = 1.0, 0.0
            continue
        ends = sorted(((lo - at_top[a]) / step[a], (hi - at_top[a]) / step[a]))
        first, last = max(first, ends[0]), min(last, ends[1])
    first, last = int(math.ceil(first - 1e-9)), int(math.floor(last + 1e-9))
    if last - first < 1:   # no spine in the file's field (a scan without one): keep every slice
        first, last = 0, n - 1
    si = file_grid.si_axis
    cut = VolumeGeometry(n_slices=last - first + 1, file_si_axis=si,
                         file_si_reversed=bool(step[si] < 0), z_first_mm=float(geometry.z_mm(first)),
                         slice_spacing_mm=geometry.slice_spacing_mm,
                         file_index_knots=((0.0, float(at_top[si] + first * step[si])),
                                           (float(last - first), float(at_top[si] + last * step[si]))))
    return np.ascontiguousarray(hu[first:last + 1]), cut
