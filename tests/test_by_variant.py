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


def test_split_bins_a_continuous_field_into_intervals():
    per_case = pd.DataFrame({
        "view": ["frontal"] * 4, "folds": ["ensemble"] * 4, "name": ["a", "b", "c", "d"],
        "negative": [False] * 4, "status": ["found"] * 4, "right_level": [True, True, False, True],
        "pred_z_mm": [100.0, 100.0, 60.0, 100.0], "true_z_mm": [100.0] * 4})
    truth = pd.DataFrame({"name": ["a", "b", "c", "d"], "arch_taper": [0.0, 0.7, 1.2, 2.5]})
    table = by_variant.split(per_case, truth, "arch_taper", bins=[0, 0.8, 1.6, 2.5]).set_index("arch_taper")
    # the lowest edge belongs to the first interval, the others to the interval they close
    assert table["cases"].tolist() == [2, 1, 1]
    assert table["wrong found"].tolist() == [0, 1, 0]


def test_a_k_fold_evaluation_of_merged_phantoms_is_matched_to_its_sources_and_judged_by_the_l3_body():
    # k-fold rows: names carry the merge's prefixes, z counted from the scan's first row
    per_case = pd.DataFrame({
        "view": ["frontal"] * 4, "fold": [1, 1, 2, 2],
        "name": ["mix_a_synth_s1_00000", "mix_b_synth_s2_00000", "mix_b_synth_s2_00001", "other_x"],
        "negative": [False, False, True, False], "status": ["found", "found", "not_found", "found"],
        "true_z_mm": [-100.0, -200.0, float("nan"), -50.0], "pred_z_mm": [-112.0, -203.0, float("nan"), -50.0]})
    a = pd.DataFrame({"name": ["synth_s1_00000"], "l3_z_mm": [300.0], "tilt_deg": [20.0],
                      "vertebrae_z_mm": [{"L3": (314.0, 286.0)}]})
    b = pd.DataFrame({"name": ["synth_s2_00000", "synth_s2_00001"], "l3_z_mm": [50.0, float("nan")],
                      "tilt_deg": [0.0, 0.0], "vertebrae_z_mm": [{"L3": (64.0, 36.0)}, {}]})
    truth = pd.concat([a.assign(key="a_" + a["name"]), b.assign(key="b_" + b["name"])], ignore_index=True)
    cases = by_variant.kfold_cases(per_case, truth)
    assert cases["name"].tolist() == ["synth_s1_00000", "synth_s2_00000", "synth_s2_00001"]   # other_x: no source
    assert cases["pred_z_mm"].iloc[0] == 288.0 and cases["right_level"].tolist() == [True, True, False]
    table = by_variant.split(cases, truth, "tilt_deg").set_index("tilt_deg")
    assert table.loc[20.0, ["cases", "right found", "median signed mm", "within 10 mm"]].tolist() == [1, 1, -12.0, 0]
    assert table.loc[0.0, ["cases", "right found", "median signed mm", "within 10 mm"]].tolist() == [1, 1, -3.0, 1]
