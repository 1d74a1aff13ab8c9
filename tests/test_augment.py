"""Augmentation: flip only frontal, the label row follows zoom and deformation, thickness keeps
it, intensity keeps zeros, determinism, config checking."""
import numpy as np
import pytest

from l3loc.augment import AUGMENT_DEFAULTS, Augmenter, _thick_slices

# every step off: tests switch on one at a time
OFF = {"hflip": False, "intensity_shift": 0.0, "intensity_scale": 0.0, "zoom": [1.0, 1.0],
       "deform_mm": 0.0, "thickness_mm": [1.0, 1.0], "p": 1.0}


def line_image(height=160, width=96, row=60):
    """Dim spine column band with a bright 1-px line at ``row`` (masked sides stay 0)."""
    img = np.zeros((height, width), np.float32)
    img[:, 34:62] = 0.2
    img[row, 34:62] = 1.0
    return img


def line_row(img):
    return int(img[:, 40:56].mean(axis=1).argmax())


def test_config_keys_match_the_config_defaults():
    from l3loc.config import DEFAULTS
    assert set(AUGMENT_DEFAULTS) == set(DEFAULTS["augment"])


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match=r"'vflip'.*known: hflip"):
        Augmenter({"vflip": True}, "frontal", np.random.default_rng(0))


@pytest.mark.parametrize("cfg", [{"p": 1.5}, {"zoom": [1.2, 0.8]}, {"zoom": 1.1},
                                 {"deform_mm": 30.0}, {"intensity_scale": 1.0},
                                 {"thickness_mm": [-1, 2]}, {"hflip": "yes"}])
def test_bad_values(cfg):
    with pytest.raises(ValueError):
        Augmenter(cfg, "sagittal", np.random.default_rng(0))


def test_unknown_view():
    with pytest.raises(ValueError, match="unknown view"):
        Augmenter(OFF, "axial", np.random.default_rng(0))


def test_flip_frontal_only():
    img = np.zeros((8, 6), np.float32)
    img[2, 1] = 1.0
    flips = {"frontal": 0, "sagittal": 0}
    for view in flips:
        aug = Augmenter({**OFF, "hflip": True}, view, np.random.default_rng(0))
        for _ in range(20):
            out, row = aug(img, 2.0)
            assert row == 2.0 and out[2].sum() == 1.0  # never moved vertically
            flips[view] += int(out[2, 4] == 1.0)  # column 1 mirrored to column 6 - 1 - 1
    assert 5 <= flips["frontal"] <= 15 and flips["sagittal"] == 0


def test_stacked_views_flip_frontal_channel_only():
    img = np.zeros((2, 8, 6), np.float32)
    img[:, 3, 0] = 1.0
    aug = Augmenter({**OFF, "hflip": True}, ("frontal", "sagittal"), np.random.default_rng(0))
    outs = [aug(img, 3.0)[0] for _ in range(10)]
    flipped = [o for o in outs if o[0, 3, 5] == 1.0]
    assert flipped and all(o[1, 3, 0] == 1.0 for o in outs)


@pytest.mark.parametrize("cfg", [
    {"zoom": [0.8, 1.2]},
    {"deform_mm": 6.0},
    {"zoom": [0.8, 1.2], "deform_mm": 6.0, "hflip": True},
])
def test_label_row_follows_the_line(cfg):
    rng = np.random.default_rng(1)
    aug = Augmenter({**OFF, **cfg}, "frontal", rng)
    moved = 0
    for row in (20, 60, 81, 130):
        for _ in range(5):
            out, new_row = aug(line_image(row=row), float(row))
            assert abs(line_row(out) - new_row) <= 1.0
            moved += abs(new_row - row) > 1.0
    assert moved > 5  # the transforms really moved the line


def test_zoom_moves_row_about_the_centre():
    # zoom z about c = (H - 1) / 2: row r -> (r - c) * z + c; z drawn from [1.2, 1.2]
    out, row = Augmenter({**OFF, "zoom": [1.2, 1.2]}, "sagittal", np.random.default_rng(0))(
        line_image(height=161, row=40), 40.0)
    assert row == pytest.approx((40 - 80) * 1.2 + 80)  # 32.0
    assert line_row(out) == 32


def test_masked_columns_stay_zero_under_zoom():
    img = line_image()
    aug = Augmenter({**OFF, "zoom": [1.2, 1.2], "deform_mm": 5.0}, "frontal",
                    np.random.default_rng(0))
    out, _ = aug(img, 60.0)
    assert not out[:, :34].any() and not out[:, 62:].any()


def test_thick_slices_hand_values():
    col = np.array([0, 5, 1, 7, 2], np.float32)[:, None]
    # k = 2, phase 0: rows 0, 2, 4 kept (0, 1, 2), rows 1 and 3 interpolated
    np.testing.assert_allclose(_thick_slices(col, 2, 0)[:, 0], [0, 0.5, 1, 1.5, 2])
    # phase 1: rows 1, 3 kept (5, 7); row 0 repeats row 1, row 4 repeats row 3
    np.testing.assert_allclose(_thick_slices(col, 2, 1)[:, 0], [5, 5, 6, 7, 7])


def test_thickness_keeps_label_row_and_linear_ramps():
    ramp = np.tile(np.linspace(0.1, 0.9, 100, dtype=np.float32)[:, None], (1, 8))
    aug = Augmenter({**OFF, "thickness_mm": [5.0, 5.0]}, "sagittal", np.random.default_rng(0))
    out, row = aug(ramp, 42.5)
    assert row == 42.5
    # linear interpolation of a linear ramp is exact between the first and last kept rows
    np.testing.assert_allclose(out[5:95], ramp[5:95], atol=1e-6)
    assert not np.array_equal(out, ramp)  # but the edge rows repeat a kept row


def test_thickness_keeps_a_broad_peak_within_half_a_slice():
    rows = np.arange(120, dtype=np.float32)
    img = np.tile(np.exp(-0.5 * ((rows - 57) / 4.0) ** 2)[:, None], (1, 8)).astype(np.float32)
    aug = Augmenter({**OFF, "thickness_mm": [2.0, 5.0]}, "sagittal", np.random.default_rng(3))
    for _ in range(5):
        out, row = aug(img, 57.0)
        # the brightest row is the kept row nearest the peak: at most 5 // 2 = 2 rows away
        assert row == 57.0 and abs(int(out[:, 0].argmax()) - 57) <= 2


def test_intensity_keeps_zeros_and_range():
    img = np.array([[0.0, 0.5, 1.0, 0.02]], np.float32)
    aug = Augmenter({**OFF, "intensity_scale": 0.5, "intensity_shift": 0.3}, "sagittal",
                    np.random.default_rng(0))
    clipped = 0
    for _ in range(10):
        out, _ = aug(img, np.nan)
        assert out[0, 0] == 0.0 and out.min() >= 0.0 and out.max() <= 1.0
        clipped += out[0, 2] == 1.0
    assert clipped > 0


def test_intensity_is_affine_within_its_ranges():
    img = np.array([[0.25, 0.5, 0.75]], np.float32)  # no clipping with +-10 % and +-0.05
    aug = Augmenter({**OFF, "intensity_scale": 0.1, "intensity_shift": 0.05}, "sagittal",
                    np.random.default_rng(0))
    for _ in range(10):
        out = aug(img, 1.0)[0][0]
        scale = (out[2] - out[0]) / 0.5
        shift = out[1] - 0.5 * scale
        assert out[1] - out[0] == pytest.approx(out[2] - out[1], abs=1e-6)
        assert 0.9 <= scale <= 1.1 and -0.05 <= shift <= 0.05


def test_nan_label_stays_nan_and_input_untouched():
    img = line_image()
    before = img.copy()
    out, row = Augmenter(AUGMENT_DEFAULTS, "frontal", np.random.default_rng(0))(img, np.nan)
    assert np.isnan(row) and out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_array_equal(img, before)


def test_p_zero_returns_the_image_unchanged():
    img = line_image()
    out, row = Augmenter({"p": 0.0}, "frontal", np.random.default_rng(0))(img, 60.0)
    np.testing.assert_array_equal(out, img)
    assert row == 60.0


def test_deterministic_given_the_rng():
    img = line_image()
    cfg = {**AUGMENT_DEFAULTS, "p": 1.0}
    a = [Augmenter(cfg, "frontal", np.random.default_rng(7))(img, 60.0) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    assert a[0][1] == a[1][1]
    other = Augmenter(cfg, "frontal", np.random.default_rng(8))(img, 60.0)
    assert not np.array_equal(other[0], a[0][0])


def test_spacing_scales_millimetre_amounts():
    # at 2 mm pixels a 4 mm thickness is k = 2 px, so the 1-px line on an odd row may vanish
    # but the label never moves; at 5 mm max and 2 mm pixels k is at most 2
    ramp = np.tile(np.linspace(0.1, 0.9, 50, dtype=np.float32)[:, None], (1, 4))
    out, row = Augmenter({**OFF, "thickness_mm": [4.0, 4.0]}, "sagittal",
                         np.random.default_rng(0), spacing_mm=2.0)(ramp, 20.0)
    assert row == 20.0
    np.testing.assert_allclose(out[2:48], ramp[2:48], atol=1e-6)


def test_an_array_of_level_rows_moves_like_each_row_alone():
    img = np.random.default_rng(0).random((120, 40)).astype(np.float32)
    rows = np.array([10.3, 55.0, np.nan, 101.7])
    cfg = {"p": 1.0, "zoom": (0.8, 1.2), "deform_mm": 3.0}
    out_img, out_rows = Augmenter(cfg, "sagittal", np.random.default_rng(5))(img, rows)
    assert isinstance(out_rows, np.ndarray) and np.isnan(out_rows[2])
    for k in (0, 1, 3):
        one_img, one = Augmenter(cfg, "sagittal", np.random.default_rng(5))(img, rows[k])
        assert isinstance(one, float) and out_rows[k] == pytest.approx(one)
        np.testing.assert_array_equal(one_img, out_img)
    assert not np.allclose(out_rows[[0, 1, 3]], rows[[0, 1, 3]])


# ----------------------------------------------------------------------------- domain randomisation

DR_ON = {"row_scale_p": 1.0, "rotate_p": 1.0, "blur_p": 1.0, "bone_p": 1.0, "gamma_p": 1.0,
         "blob_p": 1.0, "noise_p": 1.0, "cutout_p": 1.0, "truncate_p": 1.0, "texture_p": 1.0}


def test_domain_randomisation_is_off_by_default_and_changes_nothing_when_off():
    """Every ``_p`` is 0 by default; then the output (and the random stream) is that of the
    existing steps alone."""
    assert all(AUGMENT_DEFAULTS[k] == 0.0 for k in DR_ON)
    img = line_image()
    base = {**AUGMENT_DEFAULTS, "p": 1.0}
    a = Augmenter(base, "frontal", np.random.default_rng(5))(img, 60.0)
    wider = {**base, "row_scale": [0.5, 2.0], "noise_std": [0.3, 0.3], "blob_n": 9}  # p still 0
    b = Augmenter(wider, "frontal", np.random.default_rng(5))(img, 60.0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    out, row = Augmenter({**OFF, **{k: 0.0 for k in DR_ON}}, "sagittal", np.random.default_rng(0))(img, 60.0)
    np.testing.assert_array_equal(out, img)
    assert row == 60.0


def test_row_scale_stretches_rows_only_and_moves_the_label_exactly():
    img = line_image()
    aug = Augmenter({**OFF, "row_scale_p": 1.0, "row_scale": [1.25, 1.25]}, "sagittal",
                    np.random.default_rng(0))
    out, row = aug(img, 60.0)
    centre = (160 - 1) / 2
    assert row == pytest.approx((60 - centre) * 1.25 + centre)  # 50.375
    assert abs(line_row(out) - row) <= 0.5
    # columns untouched: the spine band keeps its edges
    assert out[100, 33] == 0 and out[100, 34] > 0 and out[100, 61] > 0 and out[100, 62] == 0


def test_rotation_turns_endplates_about_the_labelled_rows_on_the_spine_column():
    """Two bright dots on the centre column (the spine) at the label rows: after a turn of 10
    degrees each dot lies on its returned label row, the pair's midpoint (the pivot) has not
    moved, and a horizontal line (an endplate) now slopes by 10 degrees."""
    height, width = 200, 120
    img = np.full((height, width), 0.1, np.float32)   # no empty column (those stay empty)
    rows = np.array([70.0, 130.0])
    for r in rows:
        img[int(r) - 1:int(r) + 2, width // 2 - 1:width // 2 + 2] = 1.0
    aug = Augmenter({**OFF, "rotate_p": 1.0, "rotate_deg": [10.0, 10.0]}, "sagittal",
                    np.random.default_rng(0))
    out, new_rows = aug(img, rows)
    pivot = rows.mean()
    np.testing.assert_allclose(new_rows, pivot + (rows - pivot) * np.cos(np.radians(10.0)))
    for r in new_rows:
        band = out[int(r) - 6:int(r) + 7]
        rr, cc = np.unravel_index(band.argmax(), band.shape)
        assert abs(rr + int(r) - 6 - r) <= 1.0
        assert abs(abs(cc - width // 2) - 30 * np.sin(np.radians(10.0))) <= 1.0  # sideways ~5 px
    line = np.full((height, width), 0.1, np.float32)
    line[100, 20:100] = 1.0
    turned, row = Augmenter({**OFF, "rotate_p": 1.0, "rotate_deg": [10.0, 10.0]}, "sagittal",
                            np.random.default_rng(0))(line, 100.0)
    assert row == pytest.approx(100.0)                       # one row: it is the pivot
    left, right = (float(turned[:, c].argmax()) for c in (30, 90))
    assert abs(abs(right - left) - 60 * np.tan(np.radians(10.0))) <= 1.5


def test_rotation_leaves_frontal_images_and_their_random_stream_alone():
    img = line_image()
    turn = {**OFF, "rotate_p": 1.0, "rotate_deg": [10.0, 10.0]}
    for view in ("frontal", ("frontal", "sagittal")):
        image = img if isinstance(view, str) else np.stack([img, img])
        out, row = Augmenter(turn, view, np.random.default_rng(0))(image, 60.0)
        np.testing.assert_array_equal(out, image)
        assert row == 60.0
    # the draws after it are those of a run without rotation
    base = {"p": 1.0, "noise_p": 1.0}
    a = Augmenter(base, "frontal", np.random.default_rng(3))(img, 60.0)[0]
    b = Augmenter({**base, "rotate_p": 1.0}, "frontal", np.random.default_rng(3))(img, 60.0)[0]
    np.testing.assert_array_equal(a, b)


def test_blur_is_anisotropic():
    img = np.zeros((41, 41), np.float32)
    img[20, 20] = 1.0
    cfg = {**OFF, "blur_p": 1.0, "blur_row_mm": [3.0, 3.0], "blur_col_mm": [0.0, 0.0]}
    out, row = Augmenter(cfg, "sagittal", np.random.default_rng(0))(img, 20.0)
    assert row == 20.0
    assert out[14:27, 20].min() > 0 and out[20, 19] == 0 and out[20, 21] == 0  # rows only
    assert int(out[:, 20].argmax()) == 20 and out.sum() == pytest.approx(1.0, abs=1e-5)


def test_bone_hu_scale_and_offset_act_in_hu_before_the_window():
    # 0.5 in the [100, 1500] window is 800 HU; x 0.5 + 100 -> 500 HU -> (500 - 100) / 1400
    img = np.full((4, 4), 0.5, np.float32)
    img[0] = 0.0  # at or below 100 HU: unknown, stays 0
    cfg = {**OFF, "bone_p": 1.0, "bone_scale": [0.5, 0.5], "bone_offset_hu": [100.0, 100.0]}
    out, _ = Augmenter(cfg, "sagittal", np.random.default_rng(0))(img, 1.0)
    np.testing.assert_allclose(out[1:], 400.0 / 1400.0, rtol=1e-6)
    assert out[0].max() == 0.0
    # another window: 0.5 of [0, 1000] is 500 HU -> 350 HU -> 0.35
    out, _ = Augmenter(cfg, "sagittal", np.random.default_rng(0), hu_window=(0, 1000))(img, 1.0)
    np.testing.assert_allclose(out[1:], 0.35, rtol=1e-6)


def test_gamma():
    img = np.full((3, 3), 0.25, np.float32)
    out, _ = Augmenter({**OFF, "gamma_p": 1.0, "gamma": [0.5, 0.5]}, "sagittal",
                       np.random.default_rng(0))(img, 1.0)
    np.testing.assert_allclose(out, 0.5, rtol=1e-6)


def test_blobs_add_bright_spots_but_never_in_masked_columns():
    img = line_image()
    cfg = {**OFF, "blob_p": 1.0, "blob_n": 5, "blob_radius_mm": [4.0, 8.0], "blob_value": [0.9, 0.9]}
    out, row = Augmenter(cfg, "frontal", np.random.default_rng(1))(img, 60.0)
    assert row == 60.0
    assert out.max() > 0.5 and (out >= img - 1e-7).all()  # max-combined: nothing darker
    assert out[:, :34].max() == 0 and out[:, 62:].max() == 0  # masked columns stay empty


def test_noise_is_correlated_has_the_drawn_std_and_spares_zeros():
    img = np.zeros((200, 200), np.float32)
    img[:, 20:180] = 0.5
    cfg = {**OFF, "noise_p": 1.0, "noise_std": [0.05, 0.05], "noise_corr_mm": [2.0, 2.0]}
    out, row = Augmenter(cfg, "sagittal", np.random.default_rng(0))(img, 100.0)
    d = out[:, 20:180] - 0.5
    assert row == 100.0 and d.std() == pytest.approx(0.05, rel=0.1)
    lag1 = np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1]
    assert lag1 > 0.8  # neighbours move together (white noise: about 0)
    assert out[:, :20].max() == 0 and out[:, 180:].max() == 0


def test_cutouts_and_truncation_zero_patches_and_a_side():
    img = np.full((100, 100), 0.5, np.float32)
    cfg = {**OFF, "cutout_p": 1.0, "cutout_n": 1, "cutout_mm": [10.0, 10.0]}
    out, row = Augmenter(cfg, "sagittal", np.random.default_rng(0))(img, 50.0)
    zero = out == 0
    assert row == 50.0 and 0 < zero.sum() <= 100  # one 10 x 10 px patch (clipped at an edge)
    rows, cols = np.nonzero(zero)
    assert rows.max() - rows.min() <= 9 and cols.max() - cols.min() <= 9
    cfg = {**OFF, "truncate_p": 1.0, "truncate_mm": [30.0, 30.0]}
    sides = set()
    for seed in range(8):
        out, _ = Augmenter(cfg, "sagittal", np.random.default_rng(seed), spacing_mm=2.0)(img, 50.0)
        empty = np.nonzero(~out.any(axis=0))[0]
        assert len(empty) == 15  # 30 mm at 2 mm
        sides.add("left" if empty[0] == 0 else "right")
        assert empty[0] == 0 or empty[-1] == 99
    assert sides == {"left", "right"}


def test_a_spine_band_erases_whole_rows_between_the_labelled_levels_only():
    img = np.full((300, 60), 0.5, np.float32)
    levels = np.array([60.0, 100.0, np.nan, 180.0, 220.0])   # one level absent
    cfg = {**OFF, "spine_band_p": 1.0, "spine_band_mm": [20.0, 20.0]}
    centres = []
    for seed in range(40):
        out, rows = Augmenter(cfg, "sagittal", np.random.default_rng(seed))(img, levels)
        np.testing.assert_array_equal(rows, levels)              # no row moves
        erased = np.nonzero(~out.any(axis=1))[0]
        assert 19 <= len(erased) <= 21 and np.all(np.diff(erased) == 1)   # one 20 mm band, whole rows
        assert (out[out > 0] == 0.5).all()
        centres.append(erased.mean())
    # from 40 mm above the highest level (row 20) down to the lowest (row 220)
    assert min(centres) >= 20 - 1 and max(centres) <= 220 + 1 and max(centres) - min(centres) > 120
    # a single L3 row: within 150 mm of it (2 mm pixels: 75 rows); no label, nothing erased
    cfg2 = {**cfg, "spine_band_mm": [10.0, 10.0]}
    for seed in range(20):
        out, _ = Augmenter(cfg2, "sagittal", np.random.default_rng(seed), spacing_mm=2.0)(img, 150.0)
        erased = np.nonzero(~out.any(axis=1))[0]
        assert len(erased) == 5 and 75 - 3 <= erased.mean() <= 225 + 3
    out, _ = Augmenter(cfg, "sagittal", np.random.default_rng(0))(img, np.nan)
    assert (out == img).all()


def test_domain_randomisation_is_deterministic_and_keeps_the_label_row():
    img = line_image()
    cfg = {**AUGMENT_DEFAULTS, "p": 1.0, **DR_ON, "row_scale": [1.0, 1.0], "zoom": [1.0, 1.0],
           "deform_mm": 0.0}
    a = Augmenter(cfg, "frontal", np.random.default_rng(3))(img, 60.0)
    b = Augmenter(cfg, "frontal", np.random.default_rng(3))(img, 60.0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] == 60.0  # no geometric step on: intensity steps never move the row
    c = Augmenter(cfg, "frontal", np.random.default_rng(4))(img, 60.0)
    assert not np.array_equal(a[0], c[0])


def vertebra_column(height=120, width=64):
    """Dim soft tissue with a column of bright 'vertebrae' (8 rows) and dark 'discs' (4 rows)."""
    img = np.zeros((height, width), np.float32)
    img[:, 8:56] = 0.1
    for top in range(4, height - 8, 12):
        img[top:top + 8, 24:40] = 0.7
    return img


def test_random_texture_changes_texture_keeps_bone_bright_zeros_and_rows():
    img = vertebra_column()
    bone, tissue = img == 0.7, img == 0.1
    changed = 0
    for seed in range(6):
        cfg = {**OFF, "texture_p": 1.0, "texture_mix": [1.0, 1.0]}
        out, row = Augmenter(cfg, "sagittal", np.random.default_rng(seed))(img, 40.0)
        assert row == 40.0 and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert out[:, :8].max() == 0 and out[:, 56:].max() == 0   # below-window pixels stay 0
        assert out[bone].mean() > out[tissue].mean()              # bone stays the bright part
        changed += not np.allclose(out, img, atol=0.02)
    assert changed >= 5
    # mix 0 gives the image back; each seed draws its own net
    out, _ = Augmenter({**OFF, "texture_p": 1.0, "texture_mix": [0.0, 0.0]}, "sagittal",
                       np.random.default_rng(0))(img, 40.0)
    np.testing.assert_allclose(out, img, atol=1e-6)


@pytest.mark.parametrize("cfg", [{"blur_p": 2.0}, {"gamma": [0, 1]}, {"blob_n": -1},
                                 {"cutout_n": 1.5}, {"noise_std": [0.1, 0.0]},
                                 {"texture_mix": [0.5, 1.5]}, {"rotate_deg": [-50, 0]},
                                 {"rotate_deg": [0, 60]},
                                 {"texture_p": 0.5, "texture_layers": 0}])
def test_bad_domain_randomisation_values(cfg):
    with pytest.raises(ValueError):
        Augmenter(cfg, "sagittal", np.random.default_rng(0))
