"""Tests for l3loc.preprocess and the CaseGeometry it returns (l3loc.case_geometry): hand-worked
expectations on tiny synthetic arrays, plus the real CT."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from l3loc import preprocess as pp
from l3loc.case_geometry import CaseGeometry
from l3loc.io.geometry import CTVolume, VolumeGeometry
from l3loc.io.volume import read_volume
from l3loc.mip import VIEWS, mip
from l3loc.preprocess_config import PreprocessConfig



def _air(shape):
    return np.full(shape, -1000.0, dtype=np.float32)


@pytest.fixture
def real_ct(real_data) -> Path:
    """Folder of totalseg_example_ct (the CT, its vertebra label map and l3.json)."""
    return real_data / "totalseg_example_ct"


# ----------------------------------------------------------------------------- resampling


def test_resample_2p5mm_rows_shape_and_marker_row():
    img = np.zeros((41, 8), dtype=np.float32)
    img[10] = 1000.0  # native row 10 at 2.5 mm -> 25 mm -> processed row 25
    out = pp.resample_to_mm(img, (2.5, 1.0), 1.0)
    assert out.shape == (101, 8)  # 40 * 2.5 + 1 centres
    assert np.argmax(out[:, 0]) == 25 and out[25, 0] == pytest.approx(1000.0)
    # row 24 is native 9.6: 0.4 of the way from row 9 (0) to row 10 (1000) -> 600
    assert out[24, 0] == pytest.approx(600.0) and out[26, 0] == pytest.approx(600.0)


def test_resample_columns_separately_and_shrink_with_antialiasing():
    img = np.zeros((21, 21), dtype=np.float32)
    img[:, 1::2] = 100.0  # columns alternate 0/100: a 0.5 mm grid's Nyquist pattern
    out = pp.resample_to_mm(img, (1.0, 0.5), 1.0)
    assert out.shape == (21, 11)  # rows unchanged, 20 * 0.5 + 1 columns
    # without the prefilter every output column would sample a 0 column (all zeros). The filter
    # (sigma (2 - 1) / 2 = 0.5 px, radius 2, weights exp(-2 x^2)) gives each one
    # 100 * 2e^-2 / (1 + 2e^-2 + 2e^-8) = 21.29 of its neighbours
    expected = 100 * 2 * np.exp(-2) / (1 + 2 * np.exp(-2) + 2 * np.exp(-8))
    np.testing.assert_allclose(out[:, 1:-1], expected, rtol=1e-5)
    const = pp.resample_to_mm(np.full((30, 30), 7.0), (0.6, 0.7), 1.0)
    assert const.shape == (18, 21) and np.allclose(const, 7.0)


@pytest.mark.parametrize("n, spacing, expected", [(41, 2.5, 101), (512, 0.7, 358), (1, 3.0, 1),
                                                  (100, 1.0, 100), (11, 0.5, 6)])
def test_resampled_length(n, spacing, expected):
    assert pp.resampled_length(n, spacing, 1.0) == expected


# ----------------------------------------------------------------------------- window, canvas


def test_window_maps_fixed_points():
    out = pp.window_hu(np.array([-1000.0, 100.0, 800.0, 1500.0, 3000.0]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)


def test_fit_columns_centres_crops_and_pads():
    img = np.arange(10, dtype=np.float32)[None, :].repeat(2, axis=0)  # value == column
    cropped, off = pp.fit_columns(img, 4, centre_col=6.0)
    assert off == 4 and cropped[0].tolist() == [4, 5, 6, 7]  # column 6 lands on 4 // 2 = 2
    padded, off = pp.fit_columns(img, 16, centre_col=2.0)
    assert off == -6 and padded[0, :6].tolist() == [0] * 6 and padded[0, 6:].tolist() == list(range(10))


def test_side_mask_is_symmetric_band():
    assert pp.side_mask_cols(512, (0.35, 0.65)) == (179, 333)  # 179 + 332 == 511: symmetric
    assert pp.side_mask_cols(10, (0.3, 0.7)) == (3, 7)  # centres 3.5..6.5 of 10
    out = pp.side_mask(np.ones((2, 10), dtype=np.float32), (0.3, 0.7))
    assert out[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]


def _sagittal_mip(n_rows=100, n_cols=120):
    """A sagittal MIP (HU, columns A->P): body (40 HU) in columns 10..109, the vertebral column
    (bone in every row but the discs) in columns 60..79, a sternum (bone) in columns 15..19 in
    the top 30 rows only, a contrast-filled bowel loop (bone-bright) in columns 30..39, rows
    50..59."""
    img = np.full((n_rows, n_cols), -1000.0, dtype=np.float32)
    img[:, 10:110] = 40.0
    img[:, 60:80] = 700.0
    img[9::10, 60:80] = 90.0  # one disc row in ten
    img[:30, 15:20] = 900.0
    img[50:60, 30:40] = 600.0
    return img


def test_spine_ap_centre_finds_the_vertebral_column_not_other_bone():
    img = _sagittal_mip()
    # persistent bone in columns 60..79 (symmetric, so its weighted centroid is 69.5); the
    # sternum (30 % of the rows) and the bowel (10 %) stay below half the peak (90 %)
    assert pp.spine_ap_centre_px(img, 1.0) == pytest.approx(69.5, abs=1e-6)
    # the body centre (59.5) is 10 columns in front of it
    assert pp.body_centre_col_px(img) == pytest.approx(59.5)
    # every other column at 2 mm (smoothing 1.5 px): bone in columns 30..39, centroid 34.5
    assert pp.spine_ap_centre_px(img[:, ::2], 2.0) == pytest.approx(34.5, abs=1e-6)
    no_bone = np.where(img >= 200, 40.0, img).astype(np.float32)
    assert pp.spine_ap_centre_px(no_bone, 1.0) == pytest.approx(59.5)  # falls back to the body
    assert pp.spine_ap_centre_px(_air((5, 9)), 1.0) == pytest.approx(4.0)


def test_sagittal_canvas_is_centred_on_the_spine_in_both_paths():
    """npz path (2-D MIP) and scan path (3-D volume -> slab MIP) put the spine on column W // 2."""
    img = _sagittal_mip()
    cfg = PreprocessConfig(canvas=(16, 64))
    case = pp.preprocess_case(img, (1.0, 1.0), "sagittal", cfg=cfg)
    assert case.geometry.col_offset == 70 - 32  # round(69.5) lands on column 32
    vol = np.repeat(img[:, :, None], 30, axis=2)  # the same anatomy, 30 columns wide
    geom = VolumeGeometry(n_slices=100, file_si_axis=2, file_si_reversed=True, z_first_mm=0.0,
                          slice_spacing_mm=1.0)
    ct = CTVolume(hu=vol, spacing_mm=(1.0, 1.0, 1.0), geometry=geom, path="phantom")
    scan = pp.preprocess_volume(ct, "sagittal", cfg=cfg)
    assert scan.geometry.col_offset == case.geometry.col_offset
    np.testing.assert_array_equal(scan.image, case.image)


def test_band_col_range_states_the_band_in_mm_from_the_canvas_centre():
    cfg = PreprocessConfig(spacing_mm=2.0, canvas=(256, 128), frontal_band_mm=(-38, 38),
                              sagittal_band_mm=(-60, 50))
    # column c lies (c - 64) * 2 mm from the centre: -60..50 mm -> columns 34..89
    assert pp.side_mask_cols(128, pp.band_col_range(cfg, "sagittal")) == (34, 90)
    assert pp.side_mask_cols(128, pp.band_col_range(cfg, "frontal")) == (45, 84)  # 64 -+ 19
    wide = PreprocessConfig(spacing_mm=2.0, canvas=(256, 128), sagittal_band_mm=(-500, 500))
    assert pp.side_mask_cols(128, pp.band_col_range(wide, "sagittal")) == (0, 128)  # clipped
    off = PreprocessConfig(spacing_mm=2.0, canvas=(256, 128), sagittal_band_mm=(300, 400))
    with pytest.raises(ValueError, match="keeps no column"):
        pp.band_col_range(off, "sagittal")


def test_frontal_side_mask_is_the_frontal_band():
    """One source of truth: the columns the side mask keeps are the band's columns."""
    img = np.full((12, 200), 800.0, dtype=np.float32)
    cfg = PreprocessConfig(canvas=(16, 64), frontal_band_mm=(-9, 14))
    front = pp.preprocess_case(img, (1.0, 1.0), "frontal", cfg=cfg)
    kept = np.nonzero(front.image.any(axis=0))[0]
    first, last = pp.side_mask_cols(64, pp.band_col_range(cfg, "frontal"))
    assert (kept[0], kept[-1] + 1) == (first, last) == (32 - 9, 32 + 14 + 1)


# ----------------------------------------------------------------------------- composition


@pytest.mark.parametrize("n_rows, row_mm, label_row", [
    (1500, 0.7, 1400.0),   # tall, thin slices: 1050 mm, taller than the 512 canvas
    (60, 5.0, 41.3),       # short, thick slices
    (400, 2.5, 133.6),     # typical abdomen
    (900, 0.6, 450.25),    # thin slices
])
def test_label_row_round_trips_through_geometry(n_rows, row_mm, label_row):
    img = np.full((n_rows, 64), -1000.0, dtype=np.float32)
    img[:, 20:44] = 0.0
    marker = int(round(label_row))
    img[marker, 28:36] = 1500.0
    case = pp.preprocess_case(img, (row_mm, 0.8), "frontal", label_row=label_row,
                              cfg=PreprocessConfig(canvas=(512, 128), side_mask=False))
    g = case.geometry
    assert case.label_row_px == pytest.approx(label_row * row_mm)
    assert case.image.shape == (pp.resampled_length(n_rows, row_mm), 128)  # no row dropped
    assert g.n_rows == case.image.shape[0]
    back = g.native_row(case.label_row_px)
    assert abs(back - label_row) * row_mm < 0.5
    assert abs(g.file_index(case.label_row_px) - label_row) * row_mm < 0.5  # npz: file idx = row
    assert g.z_mm(case.label_row_px) == pytest.approx(-label_row * row_mm)
    assert g.processed_row_from_z(g.z_mm(case.label_row_px)) == pytest.approx(case.label_row_px)
    assert g.processed_row_from_file_index(label_row) == pytest.approx(case.label_row_px)
    # the marker's brightest processed row is where the geometry says, within 0.5 mm (1 px = 1 mm)
    peak = np.argmax(case.image[:, 64])
    assert abs(peak - g.processed_row(marker)) <= 0.5
    # vectorised
    rows = np.array([0.0, 10.0, case.label_row_px])
    np.testing.assert_allclose(g.processed_row(g.native_row(rows)), rows)


def test_preprocess_case_centres_body_and_masks_frontal_only():
    img = np.full((20, 100), -1000.0, dtype=np.float32)
    img[:, 10:30] = 800.0  # body at native cols 10..29 (centre 19.5) at 0.5 mm -> 1 mm col 9.75
    # frontal band -4..3 mm from canvas column 10 at 1 mm: columns 6..13
    cfg = PreprocessConfig(canvas=(16, 20), frontal_band_mm=(-4, 3))
    sag = pp.preprocess_case(img, (1.0, 0.5), "sagittal", cfg=cfg)
    assert sag.geometry.col_offset == 10 - 10  # round(9.75) - 20 // 2
    assert sag.image.shape == (20, 20) and sag.image[0, 7] == pytest.approx(0.5)
    assert np.isnan(sag.label_row_px)
    front = pp.preprocess_case(img, (1.0, 0.5), "frontal", cfg=cfg)
    assert front.image[0, :6].max() == 0.0 and front.image[0, 6:14].min() == pytest.approx(0.5)
    assert front.geometry.native_col(10) == pytest.approx(20.0)  # canvas col 10 -> 1 mm col 10
    d = front.geometry.to_dict()
    assert CaseGeometry.from_dict(d) == front.geometry


def test_preprocess_volume_matches_mip_then_case():
    vol = np.full((30, 40, 50), -1000.0, dtype=np.float32)
    vol[:, 5:35, 10:40] = 0.0
    vol[12, 25:30, 24:27] = 900.0  # bone near the spine centre
    geom = VolumeGeometry(n_slices=30, file_si_axis=2, file_si_reversed=True, z_first_mm=100.0,
                          slice_spacing_mm=2.0)
    ct = CTVolume(hu=vol, spacing_mm=(2.0, 0.8, 0.7), geometry=geom, path="phantom")
    cfg = PreprocessConfig(canvas=(64, 64))
    for view, col_mm in (("frontal", 0.7), ("sagittal", 0.8)):
        a = pp.preprocess_volume(ct, view, label_slice=12.0, cfg=cfg)
        b = pp.preprocess_case(mip(vol, view, ct.spacing_mm, cfg.sagittal_slab_mm), (2.0, col_mm),
                               view, label_row=12.0, cfg=cfg)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.label_row_px == 24.0 and np.argmax(a.image.max(axis=1)) == 24
        g = a.geometry
        # processed row 24 = canonical slice 12 = file slice 29 - 12 = 17, z = 100 - 12 * 2 = 76 mm
        assert g.file_index(24.0) == pytest.approx(17.0) and g.z_mm(24.0) == pytest.approx(76.0)
        assert g.processed_row_from_file_index(17.0) == pytest.approx(24.0)
        assert g.processed_row_from_z(76.0) == pytest.approx(24.0)
        np.testing.assert_allclose(g.processed_row_from_z(g.z_mm(np.array([0.0, 7.5]))), [0.0, 7.5])
        assert CaseGeometry.from_dict(g.to_dict()) == g


# ----------------------------------------------------------------------------- golden (real CT)

GOLDEN = Path(__file__).resolve().parent / "golden" / "totalseg_example_ct.npz"


@pytest.mark.parametrize("view", VIEWS)
def test_golden_real_ct(view, real_ct):
    """Processed images of totalseg_example_ct vs tests/golden (make_golden.py regenerates them).

    Tolerance: at most 1 of 255 levels (5.5 HU) per pixel, on at most 0.1 % of the pixels. The
    images are stored as the cache stores them (round(x * 255)); float differences between
    numpy/scipy builds (summation order in the Gaussian filter) can move a value across a
    rounding boundary, nothing more. Any real change of the preprocessing moves far more pixels.
    """
    golden = np.load(GOLDEN)
    cfg = PreprocessConfig.from_dict(json.loads(str(golden["config"])))
    case = pp.preprocess_volume(read_volume(real_ct / "ct.nii.gz"), view, cfg=cfg)
    got = np.round(case.image * 255).astype(np.int16)
    want = golden[view].astype(np.int16)
    assert got.shape == want.shape == (334, 512)  # 112 slices at 3 mm -> 111 * 3 + 1 rows
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3
    assert case.geometry.to_dict() == json.loads(str(golden[f"{view}_geometry"]))


def test_real_ct_l3_label_maps_to_processed_rows(real_ct):
    """l3.json gives L3 in NIfTI k indices (64..79, centroid 73.34) and world z (centroid 314.3).

    The file is RAS (k increases superior) with 112 slices, so canonical slice = 111 - k and
    processed row = 3 * canonical: centroid 3 * (111 - 73.34) = 112.98, extent rows 96..141.
    """
    l3 = json.loads((real_ct / "l3.json").read_text())["L3"]
    ct = read_volume(real_ct / "ct.nii.gz")
    g = pp.preprocess_volume(ct, "frontal").geometry
    assert g.processed_row_from_file_index(l3["idx_centroid"]) == pytest.approx(112.98)
    assert g.processed_row_from_z(l3["world_centroid_LPS"][2]) == pytest.approx(112.98, abs=0.5)
    assert g.file_index(112.98) == pytest.approx(73.34)
    # the label map itself, pushed through the same preprocessing as a bright "bone": its L3
    # rows must be where the geometry puts them: 96..141 fully inside; rows 95 and 142 are 2/3
    # of the way into L3 (native 31.67, 47.33), 2/3 * 1500 + 1/3 * -1000 = 667 HU -> 0.405 of the
    # window; rows 94 and 143 are 1/3 in, -167 HU -> 0.
    labels = read_volume(real_ct / "spine_labels_verse_convention.nii.gz")
    labels.hu = np.where(labels.hu == 22, 1500.0, -1000.0).astype(np.float32)
    img = pp.preprocess_volume(labels, "frontal").image
    rows = np.nonzero(img.max(axis=1) > 0.2)[0]
    assert (rows.min(), rows.max()) == (95, 142)
    assert g.processed_row_from_file_index(l3["idx_max"]) == 96.0
    assert g.processed_row_from_file_index(l3["idx_min"]) == 141.0
