"""Tests for l3loc.cache: build once, reuse, rebuild on change, read back what preprocess_case gives."""
from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest

from l3loc import cache
from l3loc.errors import InputError
from l3loc.io.npz import L3Dataset, write_l3_npz
from l3loc.preprocess import preprocess_case
from l3loc.preprocess_config import PreprocessConfig

CFG = PreprocessConfig(canvas=(64, 48))


def _mip(rows: int, cols: int, label_row: float | None) -> np.ndarray:
    img = np.full((rows, cols), -1000.0, dtype=np.float32)
    img[:, cols // 4: 3 * cols // 4] = 40.0
    img[:, cols // 2 - 2: cols // 2 + 2] = 600.0  # a "spine"
    if label_row is not None:
        img[int(round(label_row)), cols // 2 - 2: cols // 2 + 2] = 1500.0
    return img


def _write_npz(path, with_bad: bool = False):
    heights, labels = [30, 70, 12], [20.0, 33.5, math.nan]
    spacings = np.array([[0.8, 0.8, 2.5], [0.7, 0.7, 1.0], [0.9, 0.9, 5.0]])
    images = [_mip(h, 40, None if math.isnan(y) else y) for h, y in zip(heights, labels)]
    if with_bad:
        images[1] = images[1].copy()
        images[1][3, 3] = np.nan
    ds = L3Dataset(names=["a", "b", "c"], images_f=images, images_s=[im[:, ::-1] for im in images],
                   spacings=spacings, ydata={"ann1": np.array(labels), "ann2": np.array(labels)},
                   negative=np.array([False, False, True]))
    write_l3_npz(path, ds, overwrite=True)
    return ds


def test_build_and_read_back_matches_preprocess_case(tmp_path):
    ds = _write_npz(tmp_path / "l3_dataset.npz")
    out = cache.build_cache(tmp_path / "l3_dataset.npz", tmp_path / "cache", CFG, "frontal",
                            workers=1, progress=False)
    assert out.parent == tmp_path / "cache" and out.name.startswith("l3_dataset_frontal_")
    data = cache.CachedDataset(out)
    assert len(data) == 3 and data.names == ["a", "b", "c"] and data.view == "frontal"
    assert data.negative.tolist() == [False, False, True] and data.config == CFG
    for i in range(3):
        s = ds.spacings[i]
        want = preprocess_case(ds.images_f[i], (s[2], s[0]), "frontal",
                               label_row=float(ds.ydata["ann1"][i]), cfg=CFG)
        img, label, name = data[i]
        assert img.dtype == np.float32 and img.shape == want.image.shape  # full height, canvas cols
        assert np.abs(img - want.image).max() <= 0.5 / 255 + 1e-6  # uint8 rounding only
        assert name == ds.names[i]
        if i < 2:
            assert label == pytest.approx(want.label_row_px)
        else:
            assert math.isnan(label)
        assert data.geometry(i) == want.geometry
    # hand-worked: case a has 30 rows at 2.5 mm -> 29 * 2.5 + 1 = 73 rows, label 20 -> 50 mm
    assert data[0][0].shape == (73, 48) and data[0][1] == 50.0
    assert data.geometry(1).native_row(33.5) == pytest.approx(33.5)  # 1 mm rows stay as they are
    with pytest.raises(IndexError):
        data[3]


def test_reused_when_unchanged_rebuilt_when_config_or_source_changes(tmp_path):
    src = tmp_path / "l3_dataset.npz"
    _write_npz(src)
    root = tmp_path / "cache"
    first = cache.build_cache(src, root, CFG, "sagittal", workers=1, progress=False)
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert cache.build_cache(src, root, CFG, "sagittal", workers=1, progress=False) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp  # not rewritten
    other_cfg = PreprocessConfig(canvas=(64, 48), hu_window=(0, 1500))
    assert cache.build_cache(src, root, other_cfg, "sagittal", workers=1, progress=False) != first
    assert cache.build_cache(src, root, CFG, "frontal", workers=1, progress=False) != first
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "edited" source
    assert cache.cache_dir_for(src, root, CFG, "sagittal") != first
    assert not any(p.name.startswith(".") for p in root.iterdir())  # no temporary folders left


def test_two_workers_write_the_same_bytes(tmp_path):
    src = tmp_path / "l3_dataset.npz"
    _write_npz(src)
    one = cache.build_cache(src, tmp_path / "c1", CFG, "frontal", workers=1, progress=False)
    two = cache.build_cache(src, tmp_path / "c2", CFG, "frontal", workers=2, progress=False)
    assert (one / "images.u8").read_bytes() == (two / "images.u8").read_bytes()
    assert json.loads((one / "cases.json").read_text()) == json.loads((two / "cases.json").read_text())


def test_dataset_pickles_without_its_memory_map(tmp_path):
    src = tmp_path / "l3_dataset.npz"
    _write_npz(src)
    data = cache.CachedDataset(cache.build_cache(src, tmp_path / "c", CFG, "frontal", workers=1,
                                                 progress=False))
    before = data[1][0]
    clone = pickle.loads(pickle.dumps(data))
    assert clone._mm is None or data._mm is None or clone._mm is not data._mm
    np.testing.assert_array_equal(clone[1][0], before)


def test_bad_cases_and_bad_sources(tmp_path):
    src = tmp_path / "l3_dataset.npz"
    _write_npz(src, with_bad=True)
    with pytest.raises(InputError, match="NaN"):
        cache.build_cache(src, tmp_path / "c", CFG, "frontal", workers=1, progress=False)
    data = cache.CachedDataset(cache.build_cache(src, tmp_path / "c", CFG, "frontal", workers=1,
                                                 skip_bad=True, progress=False))
    assert data.names == ["a", "c"]
    with pytest.raises(InputError, match="not found"):
        cache.build_cache(tmp_path / "missing.npz", tmp_path / "c", CFG, "frontal")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="npz"):
        cache.build_cache(tmp_path / "x.txt", tmp_path / "c", CFG, "frontal")
    with pytest.raises(InputError, match="meta.json"):
        cache.CachedDataset(tmp_path)


def test_open_cache_from_resolved_config(tmp_path):
    src = tmp_path / "l3_dataset.npz"
    _write_npz(src)
    cfg = {"data": {"source": str(src), "cache_dir": str(tmp_path / "c"), "skip_bad": False},
           "preprocess": CFG.to_dict()}
    data = cache.open_cache(cfg, "sagittal", workers=1, progress=False)
    assert len(data) == 3 and data.view == "sagittal"


def _annotated_scan(folder, offset_hu: float = 0.0):
    """A 20-slice, 3 mm CT-like scan ``s1.nii.gz`` (air, tissue, a spine, a 1500 HU marker on
    canonical slice 7, 10 HU noise) plus ``offset_hu``, and ``ann.csv`` labelling the marker."""
    import pandas as pd

    from l3loc.io.annotations import write_annotations
    from l3loc.io.volume import write_volume

    vol = np.full((20, 16, 24), -1000.0, dtype=np.float32)
    vol[:, 3:13, 4:20] = 0.0
    vol[:, 10:13, 11:14] = 500.0
    vol[7, 10:13, 11:14] = 1500.0
    vol += np.random.default_rng(0).normal(0.0, 10.0, vol.shape)  # CT noise: not a label map
    write_volume(folder / "s1.nii.gz", np.round(vol + offset_hu).astype(np.int16), (3.0, 1.0, 1.0),
                 z_first_mm=50.0)
    # l3_slice is the file's own index: write_volume stores k = 0 most inferior, so canonical 7 is
    # file slice 19 - 7 = 12; z = 50 - 7 * 3 = 29 mm
    write_annotations(folder / "ann.csv", pd.DataFrame({"path": [str(folder / "s1.nii.gz")],
                                                        "l3_slice": [12.0]}))
    return folder / "ann.csv"


def test_annotation_csv_source_goes_through_the_volume_path(tmp_path, caplog):
    source = _annotated_scan(tmp_path)
    with caplog.at_level("WARNING", logger="l3loc"):
        data = cache.CachedDataset(cache.build_cache(source, tmp_path / "c", CFG, "frontal",
                                                     workers=1, progress=False))
    # read through read_ct: its warnings are logged naming the case (19 gaps of 3 mm = 57 mm)
    assert "[CACHE] case 's1': the scan covers only 57 mm of z" in caplog.text
    img, label, name = data[0]
    assert name == "s1" and label == 21.0 and img.shape == (58, 48)  # 19 * 3 + 1 rows
    assert np.argmax(img.max(axis=1)) == 21
    g = data.geometry(0)
    assert g.file_index(label) == pytest.approx(12.0) and g.z_mm(label) == pytest.approx(29.0)


def test_review_rows_marked_unsure_are_left_out_of_training(tmp_path, caplog):
    import shutil

    import pandas as pd

    from l3loc.io.annotations import write_annotations

    _annotated_scan(tmp_path)
    shutil.copy(tmp_path / "s1.nii.gz", tmp_path / "s2.nii.gz")
    # a reviewed corrections.csv: one scan corrected ('a'), the other left unsure ('b')
    write_annotations(tmp_path / "corrections.csv", pd.DataFrame({
        "name": ["a", "b"], "path": [str(tmp_path / "s1.nii.gz"), str(tmp_path / "s2.nii.gz")],
        "l3_slice": [12.0, 12.0],
        "status": ["corrected", "unsure"], "reviewer_note": ["", "L3 or L4?"]}))
    with caplog.at_level("INFO", logger="l3loc"):
        data = cache.CachedDataset(cache.build_cache(tmp_path / "corrections.csv", tmp_path / "c",
                                                     CFG, "frontal", workers=1, progress=False))
    assert data.names == ["a"]
    assert "1 row(s) marked unsure left out of training: b" in caplog.text


def test_annotation_csv_scan_that_is_not_ct_in_hu_stops_the_build_naming_it(tmp_path):
    # the same scan with the +1024 offset of raw CT values left in: air at 0, tissue near 1024
    source = _annotated_scan(tmp_path, offset_hu=1024.0)
    with pytest.raises(InputError, match=r"case 's1': values .* not a CT in Hounsfield units; "
                                         r"air near 0 and soft tissue near 1024") as err:
        cache.build_cache(source, tmp_path / "c", CFG, "frontal", workers=1, progress=False)
    assert err.value.path.endswith("s1.nii.gz")
    assert not any((tmp_path / "c").glob("*/meta.json"))


def test_npz_slab_width_must_match_the_config(tmp_path):
    """An npz made by l3loc records its sagittal slab; a config with another one is refused."""
    ds = _write_npz(tmp_path / "d.npz")
    ds.extra["sagittal_slab_mm"] = np.full(3, 20.0)
    write_l3_npz(tmp_path / "d.npz", ds, overwrite=True)
    with pytest.raises(InputError, match=r"d\.npz: sagittal MIPs made with a slab of 20 mm but "
                                         r"preprocess.sagittal_slab_mm is the full width"):
        cache.build_cache(tmp_path / "d.npz", tmp_path / "cache",
                          PreprocessConfig(canvas=(64, 48), sagittal_slab_mm=None), "sagittal",
                          workers=1, progress=False)
    out = cache.build_cache(tmp_path / "d.npz", tmp_path / "cache", CFG, "sagittal", workers=1,
                            progress=False)  # 20 mm, as the npz
    assert len(cache.CachedDataset(out)) == 3
