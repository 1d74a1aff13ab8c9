"""Decoders, fusion and the found / not_found / ambiguous decision, on hand-made profiles."""
import math

import numpy as np
import pytest

from l3loc.decode import (Decision, classify, decode, decode_profile, fuse_profiles, row_profile, scan_end,
                          with_fold_claims)
from l3loc.labels import band_target


def test_row_profile_keeps_only_central_columns():
    prob = np.zeros((6, 20), dtype=np.float32)
    prob[1, 0] = 0.9   # outside 0.35..0.65 of 20 columns (kept: 7..12)
    prob[4, 9] = 0.6
    np.testing.assert_allclose(row_profile(prob, (0.35, 0.65)), [0, 0, 0, 0, 0.6, 0])
    np.testing.assert_allclose(row_profile(prob, None), [0, 0.9, 0, 0, 0.6, 0])


def test_argmax_is_the_integer_row_without_offset():
    prob = np.zeros((50, 20), dtype=np.float32)
    prob[30, 10] = 0.7
    dec = decode(prob, "argmax", (0.35, 0.65), 1.0)
    assert dec.row == 30.0 and dec.confidence == pytest.approx(0.7)


@pytest.mark.parametrize("label", [20.0, 20.25, 20.5, 33.8])
def test_profile_decoder_finds_a_fractional_band_centre(label):
    # a band of +-2 mm at 1 mm with fractional coverage at its ends: the smoothed profile is
    # symmetric about the label, so the parabola's vertex lands within a tenth of a row
    prob = band_target(60, 20, label, 2.0, 1.0, (0.35, 0.65))
    dec = decode(prob, "profile", (0.35, 0.65), 1.0, smooth_mm=2.0)
    assert abs(dec.row - label) < 0.1


@pytest.mark.parametrize("label, first_full_row", [(20.0, 18.0), (20.25, 19.0), (33.8, 32.0)])
def test_argmax_takes_the_top_of_a_flat_band(label, first_full_row):
    # the card's decoder is kept literal: on a saturated band (+-2 mm) numpy's argmax returns the
    # band's first full row, up to 2 mm above the label; the profile decoder has no such bias
    prob = band_target(60, 20, label, 2.0, 1.0, (0.35, 0.65))
    assert decode(prob, "argmax", (0.35, 0.65), 1.0).row == first_full_row


def test_profile_decoder_ignores_a_lone_hot_row():
    profile = np.zeros(80, dtype=np.float32)
    profile[20:25] = 0.8    # a 5-row band at 22
    profile[60] = 0.95      # one hot row
    assert decode_profile(profile, "argmax").row == 60.0
    assert decode_profile(profile, "profile", 1.0, 2.0).row == pytest.approx(22.0)


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="unknown decoder 'median'"):
        decode(np.zeros((4, 4)), "median")


def test_fuse_profiles_is_the_rowwise_mean():
    fused = fuse_profiles([np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 0.5])])
    np.testing.assert_allclose(fused, [0.5, 0.5, 0.5])
    assert fused.dtype == np.float32
    with pytest.raises(ValueError, match="one length"):
        fuse_profiles([np.zeros(3), np.zeros(4)])
    with pytest.raises(ValueError, match="at least one"):
        fuse_profiles([])


def test_all_zero_map_is_not_found():
    dec = decode(np.zeros((40, 20), dtype=np.float32), "profile", (0.35, 0.65), 1.0)
    d = classify(dec.profile, 1.0, threshold=0.3)
    assert d.status == "not_found" and d.confidence == 0.0


def test_two_equal_peaks_30mm_apart_are_ambiguous():
    profile = np.zeros(100)
    profile[30], profile[60] = 0.9, 0.9
    d = classify(profile, 1.0, threshold=0.5, subpixel=False)
    assert d.status == "ambiguous"
    assert {d.row, d.second_row} == {30.0, 60.0}
    assert d.confidence == d.second_confidence == 0.9


def test_peaks_30_rows_apart_at_2mm_are_60mm_apart():
    profile = np.zeros(100)
    profile[30], profile[45] = 0.9, 0.85
    assert classify(profile, 2.0, 0.5, min_separation_mm=20.0).status == "ambiguous"
    # at 1 mm the same rows are only 15 mm apart: one candidate
    d = classify(profile, 1.0, 0.5, min_separation_mm=20.0)
    assert d.status == "found" and math.isnan(d.second_row) and d.second_confidence == 0.0


def test_a_low_second_peak_and_a_shoulder_do_not_make_it_ambiguous():
    rows = np.arange(120)
    # a broad peak at 40 (its shoulder is still 0.6 at 25 mm) and a small bump at 90
    profile = 0.9 * np.exp(-0.5 * ((rows - 40) / 25.0) ** 2) + 0.3 * (rows == 90)
    d = classify(profile, 1.0, threshold=0.5, ambiguity_ratio=0.8)
    assert d.status == "found" and d.row == pytest.approx(40.0, abs=0.01)
    assert d.second_row == pytest.approx(90.0, abs=0.5)  # the bump, not the shoulder


def test_a_peak_at_the_edge_counts_as_a_candidate():
    profile = np.zeros(50)
    profile[0], profile[35] = 0.7, 0.8
    d = classify(profile, 1.0, 0.5, subpixel=False)
    assert (d.status, d.row, d.second_row) == ("ambiguous", 35.0, 0.0)


def test_below_threshold_wins_over_ambiguous():
    profile = np.zeros(100)
    profile[30], profile[60] = 0.2, 0.2
    assert classify(profile, 1.0, threshold=0.5).status == "not_found"


def test_classify_row_equals_decode_row():
    rng = np.random.default_rng(0)
    raw = rng.random(200).astype(np.float32) * 0.2
    raw[120:125] = 0.9
    for decoder, subpixel in (("argmax", False), ("profile", True)):
        dec = decode_profile(raw, decoder, 1.0, 2.0)
        assert classify(dec.profile, 1.0, 0.5, subpixel=subpixel).row == dec.row


def test_fold_claims_make_a_found_ambiguous_only_when_sure_and_a_vertebra_away():
    found = Decision("found", 100.0, 0.6, float("nan"), 0.0)
    folds = [("fold 1", 100.5, 0.7), ("fold 2", 80.0, 0.4), ("fold 3", 94.0, 0.9)]
    d = with_fold_claims(found, folds, 2.0, 0.3)       # fold 2: 40 mm higher at 0.4
    assert (d.status, d.second_row, d.second_confidence) == ("ambiguous", 80.0, 0.4)
    assert d.reason == "fold 2 on its own puts L3 40 mm higher" and d.folds == tuple(folds)
    # fold 3 lies 12 mm away: the same vertebra; at a threshold over 0.4 fold 2 claims nothing
    assert with_fold_claims(found, folds, 2.0, 0.5).status == "found"
    # a not_found stays not_found whatever its folds say
    assert with_fold_claims(Decision("not_found", 100.0, 0.1, float("nan"), 0.0), folds, 2.0,
                            0.3).status == "not_found"


def test_a_peak_at_the_scans_end_is_never_found():
    """An L3 row within 15 mm of the first or last row is not a whole body in the scan (cut, or
    the scan stops before L3, like the most confident negative phantoms): ambiguous with the
    reason at or above the threshold, not_found below; 15 mm in is found again."""
    spacing = 2.0

    def peak(row):
        return np.exp(-0.5 * ((np.arange(100) - row) / 2.0) ** 2)

    for row, end in ((3.0, "upper"), (96.0, "lower"), (92.6, "lower")):
        profile = peak(row)
        d = classify(profile, spacing, 0.5)
        assert (d.status, d.scan_end) == ("ambiguous", end)
        assert f"within 15 mm of the scan's {end} end" in d.reason
        assert d.row == pytest.approx(row, abs=0.1)
        assert classify(0.3 * profile, spacing, 0.5).status == "not_found"
    for row in (7.6, 91.4):   # just over 15 mm from the first row, from the last
        d = classify(peak(row), spacing, 0.5)
        assert (d.status, d.scan_end, d.reason) == ("found", "", "")
    assert scan_end(math.nan, 100, spacing) == ""
