"""Band targets: rows and columns for known label rows, fractional rows, blur, annealing."""
import numpy as np
import pytest

from l3loc.labels import annealed_sigma_mm, band_target


def test_integer_row_band_rows_and_columns():
    # H = W = 20, row 10, half-height 2 mm at 1 mm: rows 8..12; columns whose centre lies in
    # 35 %..65 % of 20 px, i.e. (c + 0.5) / 20 in [0.35, 0.65]: 7..12
    t = band_target(20, 20, 10.0, half_height_mm=2.0, spacing_mm=1.0)
    expected = np.zeros((20, 20), np.float32)
    expected[8:13, 7:13] = 1.0
    assert t.dtype == np.float32 and t.shape == (20, 20)
    np.testing.assert_array_equal(t, expected)


def test_column_range_symmetric_on_512_canvas():
    t = band_target(512, 512, 100.0, 2.0, 1.0)
    cols = np.flatnonzero(t.any(axis=0))
    assert (cols[0], cols[-1]) == (179, 332)  # 179 masked columns on each side
    assert 179 == 512 - 1 - 332


def test_half_height_in_mm_uses_spacing():
    # 4 mm half-height at 2 mm rows = 2 px: rows 8..12 again
    t = band_target(20, 20, 10.0, half_height_mm=4.0, spacing_mm=2.0)
    np.testing.assert_array_equal(np.flatnonzero(t[:, 10]), [8, 9, 10, 11, 12])


def test_fractional_row_partial_end_rows_and_centre_of_mass():
    # band [10.4 - 2.5, 10.4 + 2.5] = [7.9, 12.9]: row 8 covers 7.9..8.5 -> 0.6, 9..12 full,
    # row 13 covers 12.5..12.9 -> 0.4
    profile = band_target(20, 20, 10.4, 2.0, 1.0)[:, 10]
    expected = np.zeros(20)
    expected[8:14] = [0.6, 1, 1, 1, 1, 0.4]
    np.testing.assert_allclose(profile, expected, atol=1e-6)
    assert (profile * np.arange(20)).sum() / profile.sum() == pytest.approx(10.4, abs=1e-6)


def test_custom_column_range():
    t = band_target(10, 10, 5.0, 0.0, 1.0, col_range=(0.2, 0.8))
    # centres (c + 0.5) / 10 in [0.2, 0.8]: columns 2..7; half-height 0: only row 5
    np.testing.assert_array_equal(np.argwhere(t > 0)[:, 0], [5] * 6)
    np.testing.assert_array_equal(np.argwhere(t > 0)[:, 1], range(2, 8))


@pytest.mark.parametrize("row", [np.nan, float("nan")])
def test_nan_row_gives_empty_target(row):
    t = band_target(16, 16, row, 2.0, 1.0, sigma_mm=3.0)
    assert t.shape == (16, 16) and not t.any()


def test_row_outside_image_draws_only_the_inside_part():
    t = band_target(20, 20, -1.0, 2.0, 1.0)  # band rows -3..1
    np.testing.assert_array_equal(np.flatnonzero(t[:, 10]), [0, 1])
    assert not band_target(20, 20, 40.0, 2.0, 1.0).any()


def test_blurred_band_peaks_at_label_row_and_is_symmetric():
    profile = band_target(80, 20, 40.0, 2.0, 1.0, sigma_mm=5.0)[:, 10]
    assert profile.argmax() == 40 and profile[40] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(profile[40 - 10:40], profile[41:51][::-1], atol=1e-6)
    assert 0.0 < profile[30] < profile[35] < profile[39] < 1.0
    assert profile[0] < 1e-6  # 8 sigma away


def test_blurred_fractional_row_keeps_centre_of_mass():
    profile = band_target(80, 20, 40.3, 2.0, 1.0, sigma_mm=3.0)[:, 10]
    assert profile.argmax() == 40
    assert (profile * np.arange(80)).sum() / profile.sum() == pytest.approx(40.3, abs=1e-4)


def test_tiny_sigma_equals_sharp_band():
    sharp = band_target(20, 20, 10.4, 2.0, 1.0)
    np.testing.assert_allclose(band_target(20, 20, 10.4, 2.0, 1.0, sigma_mm=1e-4), sharp)
    # just above the cut-off the closed form agrees with the sharp band to ~sigma / 2.5
    np.testing.assert_allclose(band_target(20, 20, 10.4, 2.0, 1.0, sigma_mm=2e-3), sharp, atol=1e-3)


@pytest.mark.parametrize("kwargs", [
    {"spacing_mm": 0.0}, {"half_height_mm": -1.0}, {"sigma_mm": -1.0},
    {"col_range": (0.7, 0.3)}, {"label_row_px": float("inf")},
])
def test_bad_arguments(kwargs):
    args = {"height_px": 20, "width_px": 20, "label_row_px": 10.0, "half_height_mm": 2.0,
            "spacing_mm": 1.0, **kwargs}
    with pytest.raises(ValueError):
        band_target(**args)


def test_annealed_sigma_linear_and_geometric():
    assert annealed_sigma_mm(0, 3) == 10.0 and annealed_sigma_mm(2, 3) == 1.5
    assert annealed_sigma_mm(1, 3) == pytest.approx(5.75)  # halfway, linear
    assert annealed_sigma_mm(1, 3, mode="geometric") == pytest.approx(15 ** 0.5)  # sqrt(10*1.5)
    assert annealed_sigma_mm(7, 3) == 1.5  # past the end
    assert annealed_sigma_mm(0, 1) == 1.5  # one epoch: the final sigma
    assert annealed_sigma_mm(3, 5, start=0.0, end=0.0) == 0.0
    with pytest.raises(ValueError):
        annealed_sigma_mm(0, 3, start=0.0, mode="geometric")
    with pytest.raises(ValueError):
        annealed_sigma_mm(-1, 3)
