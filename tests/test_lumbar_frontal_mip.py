"""benchmarks/lumbar_frontal_mip.py: the frontal MIP of lumbar vertebrae (body, arch, transverse
processes), a labelled real scan against phantoms of its acquisition."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from l3loc.errors import InputError

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "lumbar_frontal_mip.py"
_spec = importlib.util.spec_from_file_location("lumbar_frontal_mip", _path)
tp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tp)


def test_profile_reads_the_body_column_and_the_process_at_each_distance():
    out = np.arange(-60.0, 60.5, 1.0)                       # 1 mm columns, centre at 0
    img = np.full((10, out.size), -100.0)
    img[:, np.abs(out) <= 8] = 800.0                         # the body column
    fade = np.interp(np.abs(out), [20, 44], [800, 400])      # a process falling 800 -> 400
    img[4, (np.abs(out) > 8) & (np.abs(out) <= 44)] = fade[(np.abs(out) > 8) & (np.abs(out) <= 44)]
    res = tp.process_profile(img, out)
    assert res["body"] == 800.0
    for d in tp.DISTANCES_MM:
        assert res[d] == pytest.approx(np.interp(d, [20, 44], [800, 400]))
    with pytest.raises(InputError, match="does not reach"):
        tp.process_profile(img[:, :90], out[:90])


def test_body_and_arch_split_at_the_canal():
    # [z, y front to back, x] 1 mm: a body (y 0-29, 300 HU) and, behind a canal gap (y 30-44),
    # an arch (y 45-54, 1100 HU) within 8 mm of the midline
    hu = np.full((20, 60, 41), -100.0)
    mask = np.zeros(hu.shape, bool)
    out = np.arange(41) - 20.0
    mask[:, :30, np.abs(out) <= 15] = True
    hu[mask] = 300.0
    arch = np.zeros_like(mask)
    arch[:, 45:55, np.abs(out) <= 8] = True
    mask |= arch
    hu[arch] = 1100.0
    res = tp.body_and_arch(mask, hu, 20, out)
    assert res == {"front": 300.0, "arch": 1100.0}
    body_only = mask.copy()
    body_only[:, 30:] = False
    assert np.isnan(tp.body_and_arch(body_only, hu, 20, out)["arch"])     # no canal: no split


def _write(path, arr, spacing=1.5):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing,) * 3)
    sitk.WriteImage(img, str(path))


def test_real_scan_with_labels_against_one_phantom(tmp_path, capsys):
    # a labelled 'real' L3: a body column and two processes, 1.5 mm voxels, 40 x 30 x 80
    hu = np.full((40, 30, 80), -100, np.int16)
    lab = np.zeros_like(hu, dtype=np.uint8)
    xs = (np.arange(80) - 40) * 1.5
    lab[10:30, 5:20, np.abs(xs) <= 12] = 22
    hu[10:30, 5:20, np.abs(xs) <= 12] = 700
    lab[18:24, 20:24, np.abs(xs) <= 45] = 22
    hu[18:24, 20:24, (np.abs(xs) > 12) & (np.abs(xs) <= 45)] = 350
    lab[12:28, 25:28, np.abs(xs) <= 12] = 22                     # behind the canal: the arch
    hu[12:28, 25:28, np.abs(xs) <= 12] = 1000
    _write(tmp_path / "ct.nii.gz", hu)
    _write(tmp_path / "seg-vert_msk.nii.gz", lab)
    assert tp.main(["--real", str(tmp_path), "--n", "1", "--csv", str(tmp_path / "t.csv")]) == 0
    shown = capsys.readouterr().out
    assert "against 1 phantoms" in shown and "process at 30 mm / body" in shown
    import pandas as pd
    t = pd.read_csv(tmp_path / "t.csv")
    real = t[t["source"] == "real"].iloc[0]
    # (the column is the MIP through body and arch: the arch's 1000)
    assert real["level"] == "L3" and real["body"] == 1000 and real["30"] / real["body"] == pytest.approx(0.35)
    assert (real["front"], real["arch"]) == (700, 1000)
    assert "arch / body" in shown
    assert (t["source"] != "real").sum() == 3                    # one phantom, L2-L4
    with pytest.raises(FileExistsError):                          # an existing table is kept
        tp.main(["--real", str(tmp_path), "--n", "1", "--csv", str(tmp_path / "t.csv")])


def test_a_folder_without_a_label_map_is_named(tmp_path):
    _write(tmp_path / "ct.nii.gz", np.zeros((4, 4, 4), np.int16))
    with pytest.raises(InputError, match=str(tmp_path)):
        tp.real_profiles(tmp_path)
