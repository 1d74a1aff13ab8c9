"""benchmarks/matched_phantoms.py: phantoms of a real scan's acquisition and start over L3, thin
and thickened, labelled with their own L3."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.errors import InputError
from l3loc.io.volume import read_volume, write_volume

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "matched_phantoms.py"
_spec = importlib.util.spec_from_file_location("matched_phantoms", _path)
matched_phantoms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(matched_phantoms)


def test_phantoms_match_the_scan_and_carry_their_own_l3(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    # a coarse 'real' scan: 2.5 mm slices, 4 mm pixels, 32 x 32, from z 200 down; L3 at 100
    write_volume(data / "a.nii.gz", np.zeros((120, 32, 32), np.int16), (2.5, 4.0, 4.0), z_first_mm=200.0)
    pd.DataFrame([{"name": "a", "path": "a.nii.gz", "l3_z_mm": 100.0, "l3_top_z_mm": 115.0,
                   "l3_bottom_z_mm": 85.0, "negative": 0}]).to_csv(data / "labels.csv", index=False)
    assert matched_phantoms.main(["--data", str(data), "--out", str(out), "--n", "2"]) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert len(labels) == 4 and labels["name"].str.endswith("_thick5").sum() == 2
    assert labels["name"].str.contains("_varied").sum() == 2       # every other one: varied spines
    for _, r in labels.iterrows():
        ct = read_volume(out / r["path"])
        z = np.asarray(ct.geometry.z_mm(range(ct.hu.shape[0])))
        thick = r["name"].endswith("_thick5")
        assert ct.spacing_mm[0] == pytest.approx(5.0 if thick else 2.5)
        assert ct.spacing_mm[1:] == pytest.approx((4.0, 4.0)) and ct.hu.shape[1:] == (32, 32)
        assert r["l3_bottom_z_mm"] < r["l3_z_mm"] < r["l3_top_z_mm"]
        assert z.min() < r["l3_z_mm"] < z.max()
        # the real scan starts 100 mm over its L3; the phantom as far over its own, +-30 mm
        # (+ half a thick slab: the slabs' centres lie inside the thin scan's extent)
        assert abs(z.max() - r["l3_z_mm"] - 100) <= 30 + (2.5 if thick else 0)
        assert ct.hu.max() > 400                                      # bone was rendered
    with pytest.raises(InputError, match="not empty"):
        matched_phantoms.main(["--data", str(data), "--out", str(out), "--n", "1"])


def test_set_gives_every_phantom_a_config_value_and_refuses_what_is_not_a_number(tmp_path):
    assert matched_phantoms.config_overrides(["short_rib_rate=1", "matrix=256"]) == {"short_rib_rate": 1.0, "matrix": 256}
    assert matched_phantoms.config_overrides(["arch_of_cortex=0.4", "inplane_mm=0.7,0.9"]) == {
        "arch_of_cortex": (0.4, 0.4), "inplane_mm": (0.7, 0.9)}
    for bad in (["short_rib_rate"], ["no_such_field=1"], ["style=smooth"], ["short_rib_rate=x"], ["matrix=256.5"],
                ["short_rib_rate=0.1,0.2"], ["arch_of_cortex=0.4,0.5,0.6"], ["arch_of_cortex=a,b"]):
        with pytest.raises(ValueError):
            matched_phantoms.config_overrides(bad)
    with pytest.raises(SystemExit):
        matched_phantoms.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "style=1"])
    write_volume(tmp_path / "a.nii.gz", np.zeros((120, 32, 32), np.int16), (2.5, 4.0, 4.0), z_first_mm=200.0)
    ct = read_volume(tmp_path / "a.nii.gz")
    plans = [p for p, _ in matched_phantoms.matched_phantoms(ct, 100.0, 2, 100, {"short_rib_rate": 1.0})]
    assert all(p.short_12th_rib and 5 <= p.bone["short_rib_mm"] <= 30 for p in plans)
    dim = [p for p, _ in matched_phantoms.matched_phantoms(ct, 100.0, 2, 100, {"arch_of_cortex": (0.4, 0.4)})]
    assert all(p.bone["arch"] == pytest.approx(0.4) for p in dim)
