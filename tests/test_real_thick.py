"""benchmarks/real_thick.py: a thick slice is the mean of the thin slices weighted by their
overlap with its slab, at the slab's centre z, and the written scan keeps the world z of the
labels; re-sliced on the thin grid, each thin slice holds its slab's mean."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.io.volume import read_volume, write_volume
from conftest import thin_and_thick_set

_spec = importlib.util.spec_from_file_location(
    "real_thick", Path(__file__).resolve().parents[1] / "benchmarks" / "real_thick.py")
real_thick = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_thick)


def test_thick_slices_weigh_the_thin_slices_by_their_overlap():
    hu = np.arange(12, dtype=np.int16)[:, None, None] * np.ones((1, 2, 2), np.int16) * 10
    z = 100.0 - 1.5 * np.arange(12)                       # 1.5 mm slices, top centre at 100
    thick, z_first = real_thick.thick_slices(hu, z, 5.0)
    # 12 slices span 18 mm: three whole 5 mm slabs, the last partial one dropped.
    # slab 0 (100.75 .. 95.75): slices 0-2 whole, 0.5 mm of slice 3 -> (0+10+20) * 1.5 + 30 * 0.5 = 60 / 5
    # slab 1: 1 mm of slice 3, slices 4, 5 whole, 1 mm of slice 6; slab 2: 0.5 mm of 6, 7-9 whole
    assert thick.shape == (3, 2, 2) and thick.dtype == np.int16
    assert thick[:, 0, 0].tolist() == [12, 45, 78]
    assert z_first == pytest.approx(100.75 - 2.5)


def test_written_thick_scan_keeps_world_z(tmp_path):
    hu = np.zeros((40, 8, 8), np.int16)
    hu[20] = 1000                                          # a bright slice at z 100 - 20 * 1.25 = 75
    write_volume(tmp_path / "thin.nii.gz", hu, (1.25, 1.0, 1.0), z_first_mm=100.0)
    ct = read_volume(tmp_path / "thin.nii.gz")
    thick, z_first = real_thick.thick_slices(ct.hu, np.asarray(ct.geometry.z_mm(range(40))), 5.0)
    write_volume(tmp_path / "thick.nii.gz", thick, (5.0, 1.0, 1.0), z_first_mm=z_first)
    out = read_volume(tmp_path / "thick.nii.gz")
    k = int(np.argmax(out.hu[:, 0, 0]))
    assert abs(float(out.geometry.z_mm(k)) - 75.0) <= 2.5  # the slab holding z 75
    assert out.hu[k, 0, 0] == 250                           # one bright slice of four in the slab


def _striped():
    """1 mm slices from z 100 down, every 4th slice bright in a column: (hu, z)."""
    hu = np.full((60, 8, 41), -100, np.int16)
    hu[::4, :, 18:23] = 1000
    return hu, 100.0 - np.arange(60.0)


def test_thick_on_thin_slices_gives_each_slice_its_slabs_mean():
    hu, z = _striped()
    up = real_thick.thick_on_thin_slices(hu, z, 5.0)
    assert up.shape == hu.shape
    # slab 0 holds slices 0-4 (z 100.5 .. 95.5): two bright ones of five in the column
    assert up[0, 0, 20] == up[4, 0, 20] == round((2 * 1000 - 3 * 100) / 5)
    # 60 slices = 12 whole slabs; each slice's value is one of its slab's
    thick, _ = real_thick.thick_slices(hu, z, 5.0)
    assert all((up[i] == thick[i // 5]).all() for i in range(60))


def test_resliced_scans_keep_the_thin_grid_and_labels_and_thick_scans_are_skipped(tmp_path):
    hu, z = _striped()
    data, out = thin_and_thick_set(tmp_path / "data", hu), tmp_path / "out"
    assert real_thick.main(["--data", str(data), "--out", str(out), "--on-thin-slices"]) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert labels["name"].tolist() == ["a_resliced5"] and labels["l3_z_mm"].tolist() == [60.0]
    ct = read_volume(out / "a_resliced5.nii.gz")
    assert ct.hu.shape == hu.shape and ct.spacing_mm == pytest.approx((1.0, 2.0, 2.0))
    assert ct.geometry.z_mm(range(1))[0] == pytest.approx(100.0)
    assert (ct.hu == real_thick.thick_on_thin_slices(hu, z, 5.0)).all()
