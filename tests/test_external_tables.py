"""Tests for l3loc.external_tables: the right-level rule and the summary table."""
import math
from pathlib import Path

from l3loc.external_tables import right_level


def test_right_level_inside_the_body_or_within_10mm():
    assert right_level(300.0, 316.3, 330.4, 302.1)          # 2.1 mm below the inferior endplate
    assert not right_level(296.0, 316.3, 330.4, 302.1)      # 6.1 mm below it
    assert right_level(335.4, 316.3, 330.4, 302.1)
    assert right_level(326.0, 316.3) and not right_level(327.0, 316.3)
    assert not right_level(math.nan, 316.3)


def test_summary_counts_stay_integers_beside_per_fold_rows():
    import pandas as pd

    from l3loc.external_tables import summary_markdown

    base = {"view": "fused", "n_positive": 3, "n_negative": 2, "right_level_found": 1,
            "wrong_level_found": 0, "ambiguous": 1, "not_found_on_positive": 1,
            "negatives_right": 2, "best_row_right_level": 1, "median_mm": 1.0, "mean_mm": 2.0,
            "threshold": 0.25, "threshold_source": "eval/decision.json"}
    ensemble = {**base, "folds": "ensemble", "opt_threshold": 0.1, "opt_right_level_found": 1,
                "opt_wrong_level_found": 0, "opt_negatives_right": 2}
    fold = {**base, "folds": "fold 1"}   # per-fold rows have no optimistic figures
    text = summary_markdown(pd.DataFrame([ensemble, fold]), "t", Path("d"))
    assert "| 0.100, 1/3, 0, 2/2 |" in text and "1.0/3" not in text
    assert text.rstrip().splitlines()[0] == "# t" and "Warning" not in text
    unevaluated = summary_markdown(pd.DataFrame([{**ensemble, "threshold_source": "config eval.threshold"}]),
                                   "t", Path("d"))
    assert "**Warning**: no k-fold evaluation" in unevaluated and "fused scored with the config's" in unevaluated
