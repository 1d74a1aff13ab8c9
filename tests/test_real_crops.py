"""benchmarks/real_crops.py: crops under L3 keep the top; crops over L3 (--tops) start at the
given height over it and keep everything below; both keep the world z of the labels."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.errors import InputError
from l3loc.io.volume import read_volume, write_volume

_spec = importlib.util.spec_from_file_location(
    "real_crops", Path(__file__).resolve().parents[1] / "benchmarks" / "real_crops.py")
real_crops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_crops)


def _scan_set(tmp_path):
    """One positive scan of 2 mm slices from z 200 down to 2 (L3 at 100) and one negative."""
    data = tmp_path / "data"
    data.mkdir()
    write_volume(data / "a.nii.gz", np.zeros((100, 8, 8), np.int16), (2.0, 1.0, 1.0), z_first_mm=200.0)
    pd.DataFrame([{"name": "a", "path": "a.nii.gz", "l3_z_mm": 100.0, "l3_top_z_mm": 115.0,
                   "l3_bottom_z_mm": 85.0, "negative": 0},
                  {"name": "n", "path": "missing.nii.gz", "l3_z_mm": np.nan, "l3_top_z_mm": np.nan,
                   "l3_bottom_z_mm": np.nan, "negative": 1}]).to_csv(data / "labels.csv", index=False)
    return data


def _run(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["real_crops.py", *map(str, args)])
    assert real_crops.main() == 0


def test_tops_start_over_l3_and_keep_everything_below(tmp_path, monkeypatch):
    data, out = _scan_set(tmp_path), tmp_path / "tops"
    _run(monkeypatch, "--data", data, "--out", out, "--tops", 60, 95)
    labels = pd.read_csv(out / "labels.csv")
    # 95 mm over L3 needs the scan to reach 10 mm higher than 195: it does not, so no crop
    assert labels["name"].tolist() == ["a_top60"] and labels["l3_z_mm"].tolist() == [100.0]
    ct = read_volume(out / "a_top60.nii.gz")
    z = np.asarray(ct.geometry.z_mm(range(ct.hu.shape[0])))
    assert z.max() == 160.0 and z.min() == 2.0


def test_crops_under_l3_keep_the_top(tmp_path, monkeypatch):
    data, out = _scan_set(tmp_path), tmp_path / "crops"
    _run(monkeypatch, "--data", data, "--out", out, "--below", 48)
    ct = read_volume(out / "a_crop48.nii.gz")
    z = np.asarray(ct.geometry.z_mm(range(ct.hu.shape[0])))
    assert z.min() == 52.0 and z.max() == 200.0


def test_a_non_empty_out_is_refused_in_one_line_unless_overwrite(tmp_path, monkeypatch):
    data, out = _scan_set(tmp_path), tmp_path / "crops"
    _run(monkeypatch, "--data", data, "--out", out, "--below", 48)
    before = (out / "a_crop48.nii.gz").stat().st_mtime_ns
    monkeypatch.setattr(sys, "argv", ["real_crops.py", "--data", str(data), "--out", str(out)])
    with pytest.raises(InputError, match="not empty"):
        real_crops.main()
    assert (out / "a_crop48.nii.gz").stat().st_mtime_ns == before
    _run(monkeypatch, "--data", data, "--out", out, "--below", 48, "--overwrite")
    assert pd.read_csv(out / "labels.csv")["name"].tolist() == ["a_crop48"]
