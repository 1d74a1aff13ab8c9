"""External evaluation (tools/eval.py --data): a trained experiment on data it was not trained on,
through prediction's own code, on the real example CT, an annotation CSV and an npz."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import MARKER_SPACING, MARKER_Z_FIRST, marker_phantom
from l3loc.errors import InputError
from l3loc.external import dataset_name, evaluate_external, resolve_dataset
from l3loc.external_tables import right_level
from l3loc.io.volume import write_volume

# the example CT's L3 body, as the real validation set's labels.csv gives it (three annotators)
EXAMPLE_L3 = {"l3_z_mm": 316.3, "l3_top_z_mm": 330.4, "l3_bottom_z_mm": 302.1}


def test_dataset_argument_errors(tmp_path):
    with pytest.raises(InputError, match="labels.csv"):
        resolve_dataset(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        resolve_dataset(tmp_path / "none.csv")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="expected an l3_dataset.npz"):
        resolve_dataset(tmp_path / "x.txt")
    (tmp_path / "labels.csv").write_text("path,l3_z_mm\n")
    assert resolve_dataset(tmp_path) == ("scans", tmp_path / "labels.csv")


@pytest.fixture
def real_set(tmp_path, example_ct):
    """A dataset folder like the real validation set: the real example CT (positive, with the
    body's extent), a marker phantom without its marker (negative) and a broken file."""
    folder = tmp_path / "realish"
    folder.mkdir()
    write_volume(folder / "empty chest.nii.gz", marker_phantom(markers=()), MARKER_SPACING,
                 MARKER_Z_FIRST)
    (folder / "broken.nii.gz").write_bytes(b"not a nifti")
    (folder / "labels.csv").write_text(
        "name,path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm,negative\n"
        f"example,{example_ct},{EXAMPLE_L3['l3_z_mm']},{EXAMPLE_L3['l3_top_z_mm']},"
        f"{EXAMPLE_L3['l3_bottom_z_mm']},0\n"
        "chest,empty chest.nii.gz,,,,1\n"
        "broken,broken.nii.gz,100,110,90,0\n")
    return folder


def test_real_ct_through_the_external_evaluation(trained_run, real_set, tmp_path):
    out = tmp_path / "out"
    summary = evaluate_external(trained_run, real_set, per_fold=True, out_dir=out)
    per_case = pd.read_csv(out / "per_case.csv", keep_default_na=False, na_values=[""])
    # every trained view, fused and refined, as the fold ensemble and as fold 1
    assert set(zip(summary["view"], summary["folds"])) == {
        (v, f) for v in ("frontal", "sagittal", "fused", "refined") for f in ("ensemble", "fold 1")}
    assert len(per_case) == 3 * 8
    example = per_case[per_case["name"] == "example"]
    assert set(example["status"]) <= {"found", "not_found", "ambiguous"}
    assert example["true_z_mm"].tolist() == pytest.approx([316.3] * 8, abs=1e-6)  # from the CSV
    assert example["l3_top_z_mm"].tolist() == [330.4] * 8
    assert example["pred_z_mm"].notna().all() and example["error_mm"].notna().all()
    broken = per_case[per_case["name"] == "broken"]
    assert set(broken["status"]) == {"error"} and broken["message"].str.len().min() > 0
    fused = summary[(summary["view"] == "fused") & (summary["folds"] == "ensemble")].iloc[0]
    assert (fused["n_positive"], fused["n_negative"], fused["errors"]) == (2, 1, 1)
    counted = (fused["right_level_found"] + fused["wrong_level_found"] + fused["ambiguous"]
               + fused["not_found_on_positive"] + fused["errors"])
    assert counted == fused["n_positive"]
    for name in ("per_case.csv", "summary.csv", "summary.md", "montage_fused.png",
                 "montage_frontal.png", "montage_sagittal.png"):
        assert (out / name).is_file(), name
    assert "wrong-level found" in (out / "summary.md").read_text()
    with pytest.raises(InputError, match="--overwrite"):
        evaluate_external(trained_run, real_set, out_dir=out)


def test_npz_dataset_scored_by_the_ensemble(trained_run):
    """The marker net on its own training npz finds every marker: right level on every case."""
    npz = trained_run.parents[1] / "d.npz"
    summary = evaluate_external(trained_run, npz, plots=False)
    assert (trained_run / "eval_d" / "per_case.csv").is_file()
    assert dataset_name("work/data/synth300_s1/l3_dataset.npz") == "synth300_s1"
    assert dataset_name("cohort/labels.csv") == dataset_name("cohort") == "cohort"
    for _, r in summary.iterrows():
        assert r["n_positive"] == 10 and r["errors"] == 0
        assert r["best_row_right_level"] == 10, r.to_dict()
        assert r["median_mm"] < 4.0


def test_a_subset_of_folds_is_scored_into_its_own_folder(trained_run):
    """--fold with --data: the ensemble of those folds, beside (not over) the whole ensemble's."""
    npz = trained_run.parents[1] / "d.npz"
    whole = evaluate_external(trained_run, npz, plots=False, overwrite=True)
    subset = evaluate_external(trained_run, npz, plots=False, folds=[1], overwrite=True)
    assert (trained_run / "eval_d_fold1" / "per_case.csv").is_file()
    # the run has fold 1 only: the same models, the same figures
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), subset.reset_index(drop=True))
    with pytest.raises(InputError, match="fold"):
        evaluate_external(trained_run, npz, plots=False, folds=[2], overwrite=True)


def test_an_export_folder_is_scored_with_its_fused_model(trained_run, tmp_path):
    """An export (the shipped model's layout: no best.pdparams) gets both views and fused."""
    from l3loc.export import export_experiment

    export_experiment(trained_run, tmp_path / "standalone")
    summary = evaluate_external(tmp_path / "standalone", trained_run.parents[1] / "d.npz",
                                out_dir=tmp_path / "out", plots=False)
    assert set(summary["view"]) == {"frontal", "sagittal", "fused", "refined"}


def test_eval_tool_with_data_on_the_real_ct(trained_run, real_set, tmp_path):
    tool = Path(__file__).resolve().parents[1] / "tools" / "eval.py"
    out = tmp_path / "tool_out"
    cmd = [sys.executable, str(tool), "--experiment", str(trained_run), "--data", str(real_set),
           "--out", str(out), "--no-plots"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "right level found" in done.stdout and (out / "per_case.csv").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_real_ct_through_predict(trained_run, example_ct, tmp_path):
    """The real example CT through prediction, listed in an annotation CSV: every file written
    and the truth read from the CSV."""
    from l3loc.inference import load_localiser
    from l3loc.predict import run_prediction
    from l3loc.scan_inputs import list_inputs

    csv = tmp_path / "one.csv"
    csv.write_text(f"name,path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm\nexample,{example_ct},"
                   f"{EXAMPLE_L3['l3_z_mm']},{EXAMPLE_L3['l3_top_z_mm']},"
                   f"{EXAMPLE_L3['l3_bottom_z_mm']}\n")
    loc = load_localiser(trained_run, "fused", backend="dygraph", threshold=0.0)
    [rec] = run_prediction(list_inputs([csv]), loc, tmp_path / "out")
    assert rec["status"] in ("found", "ambiguous"), rec["message"]  # threshold 0: never abstains
    assert rec["true_z_mm"] == pytest.approx(316.3, abs=1e-6)
    assert rec["error_mm"] == pytest.approx(abs(rec["l3_z_mm"] - 316.3))
    for name in ("results.csv", "index.html", "run.json", "example/result.json", "example/qc.png",
                 "example/l3_axial.png", "example/l3_axial.nii.gz"):
        assert (tmp_path / "out" / name).is_file(), name


def test_multi_level_model_writes_per_level_columns(trained_levels_run, tmp_path):
    """A tiny model with level channels, on its npz and on scans labelled with L3 and L1 (and
    one with L3 only, as the real validation set): the sequence decides L3, per-level columns
    and table are written, the truth of each level read from the labels."""
    from conftest import level_slices
    from l3loc.levels import LEVELS

    npz = trained_levels_run.parents[1] / "d.npz"
    evaluate_external(trained_levels_run, npz, out_dir=tmp_path / "npz", plots=False)
    per_case = pd.read_csv(tmp_path / "npz" / "per_case.csv", keep_default_na=False,
                           na_values=[""])
    for k in LEVELS:
        if k != "L3":
            assert {f"{k.lower()}_z_mm", f"{k.lower()}_true_z_mm", f"{k.lower()}_error_mm",
                    f"{k.lower()}_right_level"} <= set(per_case.columns), k
    assert set(per_case["l3_channel_status"]) <= {"found", "not_found", "ambiguous"}
    # level_rows of the npz are native MIP rows (2 mm slices): their true z are 2 mm apart per row
    gap = per_case["t12_true_z_mm"] - per_case["true_z_mm"]
    assert np.allclose(gap.abs() % 2.0, 0.0) and (gap > 90).all()
    per_level = pd.read_csv(tmp_path / "npz" / "per_level.csv")
    assert list(per_level["level"]) == ["L3", "L3", *[k for k in LEVELS if k != "L3"]]
    assert list(per_level["decoder"][:2]) == ["sequence", "L3 channel"]
    assert (per_level["n_present"] == 8).all()
    assert "## Every level" in (tmp_path / "npz" / "summary.md").read_text()

    folder = tmp_path / "scans"
    folder.mkdir()
    lines = ["name,path,l3_z_mm,l1_z_mm"]
    for i, l3 in enumerate((62, 70, 66)):
        slices = level_slices(l3)
        write_volume(folder / f"s{i}.nii.gz", marker_phantom(n=140, seed=20 + i, markers=slices),
                     MARKER_SPACING, MARKER_Z_FIRST)
        z = [MARKER_Z_FIRST - MARKER_SPACING[0] * c for c in slices]
        l1 = {0: z[1], 1: "", 2: MARKER_Z_FIRST + 20.0}[i]     # s2: L1 labelled above the scan
        lines.append(f"s{i},s{i}.nii.gz,{z[3]},{l1}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    evaluate_external(trained_levels_run, folder, out_dir=tmp_path / "out", plots=False)
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv", keep_default_na=False,
                           na_values=[""]).set_index("name")
    z1 = MARKER_Z_FIRST - MARKER_SPACING[0] * level_slices(62)[1]
    assert per_case.loc["s0", "l1_true_z_mm"] == pytest.approx(z1, abs=1e-4)
    assert math.isnan(per_case.loc["s1", "l1_true_z_mm"])          # not annotated
    # a level labelled outside the slices analysed is left unscored; the scan's L3 is scored
    assert math.isnan(per_case.loc["s2", "l1_true_z_mm"]) and per_case.loc["s2", "status"] != "error"
    assert per_case.loc["s2", "true_z_mm"] == pytest.approx(MARKER_Z_FIRST - 2.0 * 66, abs=1e-4)
    assert per_case.loc["s0", "true_z_mm"] == pytest.approx(MARKER_Z_FIRST - 2.0 * 62, abs=1e-4)
    found = per_case["l1_z_mm"].notna()
    np.testing.assert_allclose(per_case.loc[found, "l1_error_mm"],
                               (per_case["l1_z_mm"] - per_case["l1_true_z_mm"]).abs()[found])
    assert "sequence_confidence" in per_case and "l3_channel_z_mm" in per_case


def test_labels_with_l3_only_keep_the_single_l3_table(trained_run, tmp_path):
    """A single-L3 model scored on L3-only labels: no per-level column, no per-level file."""
    npz = trained_run.parents[1] / "d.npz"
    evaluate_external(trained_run, npz, out_dir=tmp_path / "o", plots=False)
    per_case = pd.read_csv(tmp_path / "o" / "per_case.csv")
    from l3loc.external import EXTERNAL_COLUMNS

    assert list(per_case.columns) == list(EXTERNAL_COLUMNS)
    assert not (tmp_path / "o" / "per_level.csv").exists()


def test_each_net_runs_once_per_scan(trained_run, real_set, tmp_path, monkeypatch):
    """Frontal, sagittal, fused and refined, as ensembles and as fold 1, share one map per view
    and scan: 2 net runs per readable scan instead of 12; the figures are those of separate runs."""
    from l3loc.inference import DygraphMaps, load_localiser
    from l3loc.io.volume import read_volume
    from l3loc.predict import predict_volume

    calls = []
    original = DygraphMaps.fold_maps

    def counted(self, image):
        calls.append(image.shape)
        return original(self, image)

    monkeypatch.setattr(DygraphMaps, "fold_maps", counted)
    evaluate_external(trained_run, real_set, per_fold=True, out_dir=tmp_path / "a", plots=False)
    assert len(calls) == 2 * 2   # two readable scans (the broken one is an error row) x 2 views
    # the same figures as each model localising on its own, as `l3loc predict` does
    per_case = pd.read_csv(tmp_path / "a" / "per_case.csv")
    scan = per_case[per_case["name"] == "example"].iloc[0]["input"]
    ct = read_volume(scan)
    for view in ("frontal", "sagittal", "fused", "refined"):
        rec = predict_volume(ct, load_localiser(trained_run, view))
        row = per_case[(per_case["name"] == "example") & (per_case["view"] == view)
                       & (per_case["folds"] == "ensemble")].iloc[0]
        assert row["status"] == rec["status"]
        assert row["confidence"] == pytest.approx(rec["confidence"], abs=1e-4)
        assert row["pred_z_mm"] == pytest.approx(rec["l3_z_mm"], abs=1e-3) or rec["l3_z_mm"] is None


def _case(name, status, error, right=True, negative=False):
    return {"name": name, "status": status, "confidence": 0.5, "error_mm": error, "right_level": right,
            "negative": negative, "true_z_mm": math.nan if negative else 0.0, "pred_z_mm": error,
            "l3_top_z_mm": math.nan, "l3_bottom_z_mm": math.nan, "threshold": 0.3, "message": ""}


def test_a_montage_of_a_large_set_shows_the_cases_most_worth_a_look_worst_first(tmp_path):
    from matplotlib.image import imread

    from l3loc.report import MONTAGE_CASES, montage_cases, write_external_montage

    fine = [_case(f"fine{i}", "found", 0.1 * i) for i in range(60)]
    bad = [_case("wrong", "found", 35.0, right=False), _case("neg", "found", math.nan, negative=True),
           _case("far", "ambiguous", 30.0, right=False), _case("abstained", "not_found", 2.0)]
    cases = pd.DataFrame(fine[:30] + bad + fine[30:])
    shown = montage_cases(cases)
    assert len(shown) == MONTAGE_CASES
    assert list(shown["name"][:5]) == ["wrong", "neg", "far", "abstained", "fine59"]   # then by error
    small = pd.DataFrame(fine[:5] + bad[:1])
    assert montage_cases(small).equals(small)                     # a small set: every case, in order
    tall = write_external_montage(tmp_path / "all.png", cases, {}, "many")
    short = write_external_montage(tmp_path / "few.png", small, {}, "few")
    assert imread(tall).shape[0] < imread(short).shape[0] * (MONTAGE_CASES + 2) / len(small)
