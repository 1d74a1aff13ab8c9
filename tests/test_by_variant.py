"""benchmarks/by_variant.py: an evaluation's positives of the fold ensemble split by a ground-truth
field, with right and wrong-level `found`, best rows and the signed error (+ = cranial)."""
import importlib.util
from pathlib import Path

import pandas as pd

_spec = importlib.util.spec_from_file_location(
    "by_variant", Path(__file__).resolve().parents[1] / "benchmarks" / "by_variant.py")
by_variant = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(by_variant)


def test_split_counts_each_value_of_the_field_over_the_ensembles_positives():
    per_case = pd.DataFrame({
        "view": ["sagittal"] * 5, "folds": ["ensemble"] * 4 + ["fold 1"],
        "name": ["a", "b", "c", "n", "a"], "negative": [False, False, False, True, False],
        "status": ["found", "found", "ambiguous", "not_found", "found"],
        "right_level": [True, False, False, False, False],
        "pred_z_mm": [101.0, 65.0, 70.0, float("nan"), 0.0], "true_z_mm": [100.0, 100.0, 100.0, float("nan"), 100.0]})
    truth = pd.DataFrame({"name": ["a", "b", "c", "n"], "arch_transition": [0, 1, 1, -1]})
    table = by_variant.split(per_case, truth, "arch_transition").set_index("arch_transition")
    assert list(table.index) == [0, 1]            # the negative and the single fold are left out
    assert table.loc[0, ["cases", "right found", "wrong found", "best row at L3"]].tolist() == [1, 1, 0, 1]
    assert table.loc[1, ["cases", "right found", "wrong found", "best row at L3"]].tolist() == [2, 0, 1, 0]
    assert table.loc[1, "median signed mm"] == -32.5 and table.loc[1, "off > 20 mm"] == 2
