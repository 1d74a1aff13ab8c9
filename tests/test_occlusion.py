"""benchmarks/occlusion.py: a scan with the bone of one band of rows (near the spine) or of
everything beside the spine under L3 turned to soft tissue, and each fold's L3 on it."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

_spec = importlib.util.spec_from_file_location(
    "occlusion", Path(__file__).resolve().parents[1] / "benchmarks" / "occlusion.py")
occlusion = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(occlusion)


def _scan():
    """2 mm slices from z 100 down, 2 mm pixels; a bright 'spine' at columns 18-22 and 'wings' at
    columns 2-3 and 37-38 on every slice, soft tissue elsewhere."""
    hu = np.full((50, 8, 41), 40, np.int16)
    hu[:, :, 18:23] = 1000
    hu[:, :, 2:4] = 800
    hu[:, :, 37:39] = 800
    return hu, 100.0 - 2.0 * np.arange(50)


def test_erase_turns_only_the_bone_of_its_rows_and_columns_to_soft_tissue():
    hu, z = _scan()
    rows, cols = (z <= 60) & (z >= 50), np.abs(np.arange(41) * 2.0 - 40.0) <= 10
    out = occlusion.erase(hu, rows, cols, bone_hu=150)
    block = out[np.ix_(rows, np.ones(8, bool), cols)]
    assert set(np.unique(block)) == {occlusion.SOFT_TISSUE_HU, 40}      # bone gone, soft tissue kept
    assert (out[rows][:, :, 18:23] == occlusion.SOFT_TISSUE_HU).all()
    np.testing.assert_array_equal(out[~rows], hu[~rows])
    np.testing.assert_array_equal(out[:, :, ~cols], hu[:, :, ~cols])
    assert (hu[:, :, 18:23] == 1000).all()                              # the input is not touched


def test_an_ap_part_erases_only_its_axial_rows_and_the_parts_split_the_rows():
    hu, z = _scan()
    rows, cols = (z <= 60) & (z >= 50), np.ones(41, bool)
    parts = {p: occlusion.ap_part_mask(8, 10.0, 6.0, p) for p in occlusion.AP_PARTS}
    # rows 10 mm apart, the bodies' back at row 6 (60 mm): front < 20 mm, body 20-60 mm, back > 60 mm
    assert list(np.flatnonzero(parts["front"])) == [0, 1] and list(np.flatnonzero(parts["body"])) == [2, 3, 4, 5, 6]
    assert list(np.flatnonzero(parts["back"])) == [7] and parts["all"].all()
    assert (parts["front"].astype(int) + parts["body"] + parts["back"] == 1).all()
    out = occlusion.erase(hu, rows, cols, bone_hu=150, aps=parts["body"])
    assert (out[np.ix_(rows, parts["body"], np.arange(18, 23))] == occlusion.SOFT_TISSUE_HU).all()
    np.testing.assert_array_equal(out[:, ~parts["body"]], hu[:, ~parts["body"]])
    np.testing.assert_array_equal(out[~rows], hu[~rows])


def test_main_writes_one_row_per_band_and_fold_and_refuses_to_overwrite(tmp_path):
    hu, _ = _scan()
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((2.0, 2.0, 2.0))
    img.SetOrigin((0.0, 0.0, 2.0))          # LPS: z of array slice k is 2 + 2k (inferior first)
    scan = tmp_path / "ct.nii.gz"
    sitk.WriteImage(img, str(scan))
    model = Path(__file__).resolve().parents[1] / "l3loc" / "shipped"
    model = next(p for p in model.iterdir() if (p / "metadata.json").exists())
    out = tmp_path / "occl.csv"
    args = ["--model", str(model), "--scan", str(scan), "--l3-z", "50", "--out", str(out),
            "--band-mm", "20", "--step-mm", "20"]
    assert occlusion.main(args) == 0
    table = pd.read_csv(out)
    n_folds = table["folds"].nunique() - 1
    assert table["folds"].iloc[0] == "ensemble" and table["band_centre_mm"].iloc[:n_folds + 1].isna().all()
    bands = table["band_centre_mm"].dropna().unique()
    assert len(table) == (len(bands) + 1) * (n_folds + 1)
    np.testing.assert_allclose(np.diff(bands), -20.0)
    assert {"status", "confidence", "l3_offset_mm"} <= set(table.columns)
    with pytest.raises(FileExistsError):
        occlusion.main(args)
    back = tmp_path / "occl_back.csv"
    assert occlusion.main([str(back) if a == str(out) else a for a in args] + ["--ap-part", "back"]) == 0
    assert len(pd.read_csv(back)) == len(table)
    # --beyond-mm: one copy, everything beside the spine under L3 erased
    wide = tmp_path / "beyond.csv"
    base = ["--model", str(model), "--scan", str(scan), "--l3-z", "50", "--out", str(wide), "--beyond-mm", "10"]
    with pytest.raises(SystemExit):
        occlusion.main(base)                 # needs L3's lower endplate
    assert occlusion.main(base + ["--l3-bottom", "45"]) == 0
    table = pd.read_csv(wide)
    assert len(table) == 2 * (n_folds + 1) and np.isneginf(table["band_centre_mm"].iloc[-1])
