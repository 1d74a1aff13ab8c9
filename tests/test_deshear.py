"""Gantry-tilted and oblique scans are resampled onto axis-aligned slices (l3loc.io.deshear): the
anatomy comes back straight, at its true height, and a slice number names the file's slice
through the spine."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from l3loc.io.dicom import write_dicom_series
from l3loc.io.geometry import VolumeGeometry
from l3loc.io.volume import read_volume

# A body-less scene: a bone rod along z behind the field's centre (the "spine") and, on the rod,
# a short denser marker (the "vertebra" whose height we follow), both given in LPS mm.
ROD_X, ROD_Y, ROD_HALF = 0.0, 40.0, 5.0
MARKER_Z, MARKER_HALF = -50.0, 3.0
SP_S, SP_R, SP_C = 2.0, 2.0, 2.0
SHAPE = (60, 48, 32)                       # canonical slices, rows, cols
ORIGIN_XY = (-(SHAPE[2] - 1) / 2 * SP_C, -(SHAPE[1] - 1) / 2 * SP_R)
Z_FIRST = 0.0


def _scene_hu(x, y, z) -> np.ndarray:
    rod = (np.abs(x - ROD_X) <= ROD_HALF) & (np.abs(y - ROD_Y) <= ROD_HALF)
    marker = rod & (np.abs(z - MARKER_Z) <= MARKER_HALF)
    return np.where(marker, 1500, np.where(rod, 700, -1000)).astype(np.int16)


def _tilted_acquisition(tilt_deg: float, pivot_y: float) -> np.ndarray:
    """What a scanner tilted by ``tilt_deg`` records: row y of slice c lies at
    z_c - (y - pivot) tan(tilt) (write_dicom_series' convention)."""
    c, r, q = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    y = ORIGIN_XY[1] + r * SP_R
    z = Z_FIRST - c * SP_S - (y - pivot_y) * math.tan(math.radians(tilt_deg))
    return _scene_hu(ORIGIN_XY[0] + q * SP_C, y, z)


def _rod_row(slice_hu: np.ndarray) -> float:
    rows = np.nonzero((slice_hu >= 200).any(axis=1))[0]
    return float(rows.mean())


@pytest.mark.parametrize("pivot_y", [0.0, ROD_Y])
def test_gantry_tilted_series_is_desheared_and_slices_map_to_the_file(tmp_path, pivot_y):
    tilt = 20.0
    files = write_dicom_series(tmp_path / "tilted", _tilted_acquisition(tilt, pivot_y),
                               (SP_S, SP_R, SP_C), z_first_mm=Z_FIRST, origin_xy_mm=ORIGIN_XY,
                               gantry_tilt_deg=tilt, tilt_pivot_y_mm=pivot_y)
    with pytest.warns(UserWarning, match="tilted 20.00°.*resampled onto axis-aligned slices"):
        vol = read_volume(tmp_path / "tilted")
    assert vol.meta["desheared"] and vol.meta["oblique_deg"] == pytest.approx(tilt, abs=1e-3)
    # straight: the rod lies on the same rows from top to bottom (the end slices, half covered
    # by the file, left out)
    rows = [_rod_row(vol.hu[c]) for c in (1, vol.hu.shape[0] // 2, vol.hu.shape[0] - 2)]
    assert max(rows) - min(rows) <= 1.0, rows
    assert ORIGIN_XY[1] + rows[1] * SP_R == pytest.approx(ROD_Y, abs=SP_R)
    # at its true height
    marker = int(np.argmax(vol.hu[:, :, SHAPE[2] // 2].max(axis=1)))
    assert vol.geometry.z_mm(marker) == pytest.approx(MARKER_Z, abs=SP_S)
    # the slice number: the file slice whose plane crosses the rod at the marker's height
    lean = math.tan(math.radians(tilt))
    expected = (Z_FIRST - MARKER_Z - (ROD_Y - pivot_y) * lean) / SP_S       # canonical file order
    assert abs(files.index(Path(vol.meta["dicom_files"][marker])) - expected) <= 1
    assert vol.hu[marker].max() == 1500            # the marker sits on the slice found
    # the height covered is the rod's: every slice shows the spine
    assert all((vol.hu[c] >= 200).any() for c in range(vol.hu.shape[0]))


def test_the_same_series_read_without_its_tilt_is_sheared(tmp_path):
    """What l3loc read before: the tilted slices stacked as if upright. The rod leans by
    (rows travelled) x tan(tilt), and the marker appears at another height: the error the
    de-shearing removes."""
    tilt = 20.0
    write_dicom_series(tmp_path / "flat", _tilted_acquisition(tilt, 0.0), (SP_S, SP_R, SP_C),
                       z_first_mm=Z_FIRST, origin_xy_mm=ORIGIN_XY)
    vol = read_volume(tmp_path / "flat")
    marker = int(np.argmax(vol.hu[:, :, SHAPE[2] // 2].max(axis=1)))
    assert abs(vol.geometry.z_mm(marker) - MARKER_Z) >= 10.0     # 40 mm x tan 20° = 14.6 mm
    assert "desheared" not in vol.meta


@pytest.mark.parametrize("ras", [False, True])
def test_oblique_nifti_is_resampled_straight(tmp_path, ras):
    tilt = math.radians(15.0)
    # voxel axes j and k rotated about x; the scene sampled at each voxel's true position
    direction = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    size = (32, 48, 60)                                        # i, j, k
    origin = np.array([ORIGIN_XY[0], ROD_Y - 10.0, MARKER_Z - 60.0])   # rod in the field throughout
    if ras:   # i and j run right-to-left and front-to-back reversed (a RAS file), k unchanged
        direction = direction @ np.diag([-1.0, -1.0, 1.0])
        origin = origin + np.array([(size[0] - 1) * 2.0, 0, 0]) + 2.0 * (size[1] - 1) * -direction[:, 1]
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    pts = origin[:, None] + direction @ (np.stack([i.ravel(), j.ravel(), k.ravel()]) * 2.0)
    image = sitk.GetImageFromArray(_scene_hu(*pts).reshape(k.shape))
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin(origin.tolist())
    image.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(image, str(tmp_path / "oblique.nii.gz"))
    with pytest.warns(UserWarning, match="tilted 15.00°"):
        vol = read_volume(tmp_path / "oblique.nii.gz")
    # cut to the heights at which the file covers the rod: it shows in every slice, straight
    assert all((vol.hu[c] >= 200).any() for c in range(1, vol.hu.shape[0] - 1))
    rows = [_rod_row(vol.hu[c]) for c in (1, vol.hu.shape[0] - 2)]
    assert abs(rows[0] - rows[1]) <= 1.0, rows
    marker = int(np.argmax(vol.hu.max(axis=(1, 2))))
    assert vol.geometry.z_mm(marker) == pytest.approx(MARKER_Z, abs=2.0)
    # the file's slice k through the rod at the marker's height, worked out from the direction
    p = np.array([ROD_X, ROD_Y, MARKER_Z])
    expected_k = np.linalg.solve(direction * 2.0, p - origin)[2]
    assert vol.geometry.file_index(marker) == pytest.approx(expected_k, abs=1.5)


def test_geometry_with_file_index_knots_round_trips():
    g = VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=True, z_first_mm=5.0,
                       slice_spacing_mm=2.0, file_index_knots=((0.0, 12.5), (4.0, 9.5), (9.0, 7.0)))
    assert g.file_index(2) == pytest.approx(11.0)             # between the first two knots
    assert g.file_index(6) == pytest.approx(8.5)
    assert g.file_index(-2) == pytest.approx(14.0)            # continued beyond the ends
    assert g.canonical_index(11.0) == pytest.approx(2.0)
    assert g.canonical_index(8.5) == pytest.approx(6.0)
    assert VolumeGeometry.from_dict(g.to_dict()) == g
    plain = VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=True, z_first_mm=5.0,
                           slice_spacing_mm=2.0)
    assert "file_index_knots" not in plain.to_dict()
    with pytest.raises(ValueError, match="monotonic"):
        VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=False, z_first_mm=5.0,
                       slice_spacing_mm=2.0, file_index_knots=((0.0, 1.0), (5.0, 1.0)))


def test_a_tilted_phantom_series_reads_back_like_the_same_case_untilted(tmp_path):
    """The generator's gantry tilt written as a scanner writes it (l3loc.synth.writers) and read
    back de-sheared shows the case's upright anatomy: its sagittal MIP differs from the untilted
    render's by a fraction of what the sheared stack did."""
    from dataclasses import replace

    from l3loc.mip import mip
    from l3loc.synth.anatomy import plan_case
    from l3loc.synth.config import PRESETS
    from l3loc.synth.phantom import render_volume, tilt_pivot_y_mm

    config = replace(PRESETS["tiny"], thickness_mm={1.0: 1.0}, inplane_mm=(3.0, 3.0), matrix=128,
                     fov_rates={"abdomen": 1.0}, osteoporosis_rate=0.0, tilt_rate=1.0, crop_rate=0.0)
    plan = next(p for p in (plan_case(0, i, config) for i in range(100)) if abs(p.tilt_deg) >= 15)
    tilted = render_volume(plan).copy()
    upright = render_volume(replace(plan, tilt_deg=0.0)).copy()   # the same noise, no tilt
    spacing, shape = plan.acquired_spacing_mm, plan.acquired_shape
    origin_xy = (-(shape[2] - 1) / 2 * spacing[2], -(shape[1] - 1) / 2 * spacing[1])
    write_dicom_series(tmp_path / "tilted", tilted, spacing, z_first_mm=plan.z_first_mm,
                       origin_xy_mm=origin_xy, gantry_tilt_deg=plan.tilt_deg,
                       tilt_pivot_y_mm=tilt_pivot_y_mm(plan))
    with pytest.warns(UserWarning, match="de-sheared"):
        vol = read_volume(tmp_path / "tilted")
    assert vol.spacing_mm == pytest.approx(spacing)

    def sagittal(hu, sp):
        return np.clip(mip(hu, "sagittal", sp), 100, 1500)

    # the upright render's slice at each de-sheared slice's height
    c_upright = np.rint((plan.z_first_mm - vol.geometry.z_mm(np.arange(vol.hu.shape[0]))) / spacing[0])
    inside = (c_upright >= 0) & (c_upright < shape[0])
    assert inside.mean() > 0.9
    truth = sagittal(upright, spacing)
    desheared = np.abs(sagittal(vol.hu, vol.spacing_mm)[inside] - truth[c_upright[inside].astype(int)]).mean()
    sheared = np.abs(sagittal(tilted, spacing) - truth).mean()
    assert desheared < 0.3 * sheared, (desheared, sheared)


def test_a_tilt_no_gantry_makes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="within"):
        write_dicom_series(tmp_path / "x", np.zeros((2, 4, 4), np.int16), (1.0, 1.0, 1.0),
                           gantry_tilt_deg=90.0)
    assert not (tmp_path / "x").exists()


def test_a_tilted_series_with_a_missing_slice_keeps_the_files_slice_numbers(tmp_path):
    """Both resamplings at once: the gap is evened out along the table, then the tilt undone; the
    slice through the rod at the marker's height is still named by the file that holds it."""
    tilt, pivot = 20.0, 0.0
    files = write_dicom_series(tmp_path / "tilted", _tilted_acquisition(tilt, pivot),
                               (SP_S, SP_R, SP_C), z_first_mm=Z_FIRST, origin_xy_mm=ORIGIN_XY,
                               gantry_tilt_deg=tilt, tilt_pivot_y_mm=pivot)
    files[10].unlink()                     # far from the marker's slices
    with pytest.warns(UserWarning) as caught:
        vol = read_volume(tmp_path / "tilted")
    messages = " | ".join(str(w.message) for w in caught)
    assert "uneven slice spacing" in messages and "de-sheared" in messages
    rows = [_rod_row(vol.hu[c]) for c in (1, vol.hu.shape[0] // 2, vol.hu.shape[0] - 2)]
    assert max(rows) - min(rows) <= 1.0, rows
    marker = int(np.argmax(vol.hu[:, :, SHAPE[2] // 2].max(axis=1)))
    assert vol.geometry.z_mm(marker) == pytest.approx(MARKER_Z, abs=SP_S)
    lean = math.tan(math.radians(tilt))
    expected = (Z_FIRST - MARKER_Z - (ROD_Y - pivot) * lean) / SP_S          # canonical file order
    written = [f.name for f in files]
    assert abs(written.index(Path(vol.meta["dicom_files"][marker]).name) - expected) <= 1
