"""benchmarks/thick_hybrids.py: the thin scan with one part (slices over a height above L3, or the
spine's column) replaced by its thick slabs, on the thin scan's own slices."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.errors import InputError
from l3loc.io.volume import read_volume
from conftest import thin_and_thick_set

_spec = importlib.util.spec_from_file_location(
    "thick_hybrids", Path(__file__).resolve().parents[1] / "benchmarks" / "thick_hybrids.py")
thick_hybrids = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(thick_hybrids)


def _scan():
    """1 mm slices from z 100 down, 2 mm pixels, soft tissue across; every 4th slice bright in a
    'spine' column at x 18-22 (its centre 20 of 41) and in a pair of 'rib' columns at x 2-3 and
    37-38."""
    hu = np.full((60, 8, 41), -100, np.int16)
    hu[::4, :, 18:23] = 1000
    hu[::4, :, 2:4] = 800
    hu[::4, :, 37:39] = 800
    return hu, 100.0 - np.arange(60.0)


def test_hybrids_thicken_only_their_part():
    hu, z = _scan()
    out = dict(thick_hybrids.hybrids(hu, z, (1.0, 2.0, 2.0), l3_z_mm=60.0, slice_mm=5.0, above_l3=[20.0], spine_mm=[8.0]))
    assert list(out) == ["thin", "thick", "thick_above20", "thick_below20", "thick_spine8", "thick_sides8"]
    thick = out["thick"]
    assert not (thick == hu).all()
    above = z > 80.0
    np.testing.assert_array_equal(out["thick_above20"][above], thick[above])
    np.testing.assert_array_equal(out["thick_above20"][~above], hu[~above])
    np.testing.assert_array_equal(out["thick_below20"][above], hu[above])
    np.testing.assert_array_equal(out["thick_below20"][~above], thick[~above])
    # the spine's column: +-8 mm = 4 columns either side of its centre, column 20
    spine = np.abs(np.arange(41) - 20) <= 4
    np.testing.assert_array_equal(out["thick_spine8"][:, :, spine], thick[:, :, spine])
    np.testing.assert_array_equal(out["thick_spine8"][:, :, ~spine], hu[:, :, ~spine])
    np.testing.assert_array_equal(out["thick_sides8"][:, :, 2], thick[:, :, 2])     # the rib column
    np.testing.assert_array_equal(out["thick_sides8"][:, :, 20], hu[:, :, 20])


def test_written_variants_keep_the_grid_and_labels_and_thick_scans_are_skipped(tmp_path):
    hu, z = _scan()
    data, out = thin_and_thick_set(tmp_path / "data", hu), tmp_path / "out"
    assert thick_hybrids.main(["--data", str(data), "--out", str(out), "--above-l3", "20", "--spine-mm", "8", "16"]) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert labels["name"].tolist() == [f"a~{s}" for s in ("thin", "thick", "thick_above20", "thick_below20",
                                                           "thick_spine8", "thick_sides8", "thick_spine16",
                                                           "thick_sides16")]
    assert (labels["l3_z_mm"] == 60.0).all()
    for _, r in labels.iterrows():
        ct = read_volume(out / r["path"])
        assert ct.hu.shape == hu.shape and ct.spacing_mm == pytest.approx((1.0, 2.0, 2.0))
        assert ct.geometry.z_mm(range(1))[0] == pytest.approx(100.0)
    with pytest.raises(InputError, match="not empty"):
        thick_hybrids.main(["--data", str(data), "--out", str(out)])
