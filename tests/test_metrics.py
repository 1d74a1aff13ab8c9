"""Per-case records, summaries and the threshold choice, on hand-worked numbers."""
import math

import pandas as pd
import pytest

from l3loc.decode import Decision
from l3loc.metrics import CASE_COLUMNS, SUMMARY_COLUMNS, case_record, choose_threshold, summarize
from l3loc.case_geometry import CaseGeometry


def geom(row_spacing_mm=2.5, target_mm=1.0):
    return CaseGeometry(n_native_rows=40, n_native_cols=40, row_spacing_mm=row_spacing_mm,
                        col_spacing_mm=1.0, target_mm=target_mm, n_rows=98, col_offset=0)


def test_case_record_converts_rows_to_slices_and_z():
    # processed 1 mm rows of a 2.5 mm scan: row 50 = slice 20 (z -50 mm), row 45 = slice 18
    rec = case_record("sagittal", 3, "a", 50.0, Decision("found", 45.0, 0.9, math.nan, 0.0),
                      geom(), 1.0)
    assert list(rec) == list(CASE_COLUMNS)
    assert (rec["true_slice"], rec["pred_slice"]) == (20.0, 18.0)
    assert (rec["true_z_mm"], rec["pred_z_mm"]) == (-50.0, -45.0)
    assert (rec["error_mm"], rec["signed_error_mm"], rec["error_slices"]) == (5.0, -5.0, 2.0)
    assert rec["fold"] == 3 and rec["status"] == "found" and not rec["negative"]


def test_case_record_at_2mm_pixels_scales_rows_to_mm():
    rec = case_record("frontal", 1, "a", 10.0, Decision("found", 13.5, 0.9, math.nan, 0.0),
                      geom(row_spacing_mm=5.0, target_mm=2.0), 2.0)
    # 3.5 rows of 2 mm = 7 mm = 1.4 slices of 5 mm
    assert rec["error_mm"] == pytest.approx(7.0) and rec["error_slices"] == pytest.approx(1.4)


def test_negative_case_has_no_error():
    rec = case_record("fused", 1, "n", math.nan, Decision("not_found", 12.0, 0.1, math.nan, 0.0),
                      geom(), 1.0)
    assert rec["negative"] and math.isnan(rec["error_mm"]) and math.isnan(rec["true_slice"])
    assert rec["pred_slice"] == pytest.approx(12.0 / 2.5)


def _cases(errors, statuses, negative):
    return pd.DataFrame({"view": "sagittal", "fold": [1, 1, 2, 2, 2, 2][:len(errors)],
                         "negative": negative, "status": statuses, "error_mm": errors,
                         "signed_error_mm": errors, "error_slices": [e / 2 for e in errors]})


def test_summary_by_hand():
    per_case = _cases([1.0, 3.0, 6.0, 20.0, math.nan, math.nan],
                      ["found", "found", "ambiguous", "not_found", "not_found", "found"],
                      [False, False, False, False, True, True])
    (row,) = summarize(per_case, ["view"]).to_dict("records")
    assert list(row)[1:] == list(SUMMARY_COLUMNS)
    assert (row["n_cases"], row["n_positive"], row["n_negative"]) == (6, 4, 2)
    assert row["mean_mm"] == pytest.approx(7.5)
    assert row["std_mm"] == pytest.approx(math.sqrt((6.5**2 + 4.5**2 + 1.5**2 + 12.5**2) / 4))
    assert row["median_mm"] == pytest.approx(4.5)
    assert row["p90_mm"] == pytest.approx(6.0 + 0.7 * 14.0)  # numpy's linear interpolation
    assert row["max_mm"] == 20.0 and row["mean_slices"] == pytest.approx(3.75)
    assert (row["within_5mm_pct"], row["within_10mm_pct"]) == (50.0, 75.0)
    assert (row["found"], row["not_found"], row["ambiguous"]) == (3, 2, 1)
    assert (row["negative_right"], row["negative_accuracy_pct"]) == (1, 50.0)
    assert (row["positive_right"], row["positive_detected_pct"]) == (3, 75.0)
    per_fold = summarize(per_case, ["view", "fold"])
    assert list(per_fold["fold"]) == [1, 2]
    assert list(per_fold["mean_mm"]) == [2.0, 13.0]


def test_summary_without_negatives_or_positives_gives_nan():
    (row,) = summarize(_cases([math.nan], ["not_found"], [True]), ["view"]).to_dict("records")
    assert math.isnan(row["mean_mm"]) and math.isnan(row["within_5mm_pct"])
    assert row["negative_accuracy_pct"] == 100.0 and math.isnan(row["positive_detected_pct"])


def test_threshold_separates_the_classes_at_the_midpoint():
    t, chosen = choose_threshold([0.9, 0.8, 0.7, 0.1, 0.3], [False, False, False, True, True], 0.5)
    assert chosen and t == pytest.approx(0.5)  # midway between 0.3 and 0.7


def test_threshold_balances_overlapping_classes():
    # 4 positives, 2 negatives; t = 0.55 rejects both negatives and the 0.4 positive:
    # balanced accuracy (1 + 3/4) / 2 = 0.875, better than any other cut
    conf = [0.9, 0.8, 0.6, 0.4, 0.5, 0.2]
    neg = [False, False, False, False, True, True]
    t, _ = choose_threshold(conf, neg, 0.5)
    assert t == pytest.approx(0.55)  # 0.45 would keep the 0.5 negative: (0.5 + 0.75) / 2


def test_threshold_falls_back_without_both_kinds():
    assert choose_threshold([0.9, 0.2], [False, False], 0.42) == (0.42, False)
    assert choose_threshold([0.9, 0.2], [True, True], 0.42) == (0.42, False)
    with pytest.raises(ValueError, match="shape"):
        choose_threshold([0.1], [True, False], 0.5)
