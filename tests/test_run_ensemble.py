"""run_ensemble and calibration: folds of runs trained apart pooled into one ensemble that loads
and predicts like any run, and its not_found threshold chosen on fresh labelled data with the
ensemble's own confidences (the rule of every run), recorded where prediction and export read it."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import MARKER_SPACING, marker_phantom
from l3loc.calibration import calibrate
from l3loc.cli import main
from l3loc.config import load_config, save_config
from l3loc.errors import InputError
from l3loc.inference import load_localiser
from l3loc.io.npz import L3Dataset, write_l3_npz
from l3loc.metrics import choose_threshold
from l3loc.mip import mip
from l3loc.run_ensemble import ENSEMBLED_FROM, ensemble_runs
from l3loc.runs import read_decision, sha256


def frontal_run(trained_run, dest):
    """A run folder holding only the trained marker run's frontal fold (sagittal left out)."""
    shutil.copytree(trained_run / "frontal", dest / "frontal")
    return dest


def test_pooled_folds_are_the_runs_folds_in_order_and_load_as_one_ensemble(trained_run, tmp_path):
    a, b = frontal_run(trained_run, tmp_path / "a"), frontal_run(trained_run, tmp_path / "b")
    shutil.copytree(a / "frontal" / "fold_1", b / "frontal" / "fold_3")   # b: folds 1 and 3
    sources = ensemble_runs([a, b], tmp_path / "pool", "frontal")
    assert sources == [a / "frontal" / "fold_1", b / "frontal" / "fold_1", b / "frontal" / "fold_3"]
    record = json.loads((tmp_path / "pool" / ENSEMBLED_FROM).read_text())
    assert [f["from"] for f in record["folds"]] == [str(s) for s in sources]
    for n, src in enumerate(sources, start=1):
        fold = tmp_path / "pool" / "frontal" / f"fold_{n}"
        assert sha256(fold / "best.pdparams") == sha256(src / "best.pdparams") == \
            record["folds"][n - 1]["sha256"]
    loc = load_localiser(tmp_path / "pool", "frontal", backend="dygraph")
    assert loc.views["frontal"].folds == (1, 2, 3)
    assert not (tmp_path / "pool" / "splits.json").exists()   # no k-fold of its own


def test_pooling_refuses_other_networks_one_run_missing_views_and_existing_folds(trained_run, tmp_path):
    a = frontal_run(trained_run, tmp_path / "a")
    other = frontal_run(trained_run, tmp_path / "other")
    cfg = load_config(other / "frontal" / "fold_1" / "config.yaml")
    cfg["model"]["base_channels"] = 16
    save_config(cfg, other / "frontal" / "fold_1" / "config.yaml")
    with pytest.raises(InputError, match="'model' differs"):
        ensemble_runs([a, other], tmp_path / "pool", "frontal")
    with pytest.raises(InputError, match="two or more"):
        ensemble_runs([a], tmp_path / "pool", "frontal")
    with pytest.raises(InputError, match="no trained sagittal fold"):
        ensemble_runs([a, a], tmp_path / "pool", "sagittal")
    before = sha256(a / "frontal" / "fold_1" / "best.pdparams")
    with pytest.raises(InputError, match="is one of the pooled runs"):
        ensemble_runs([a, frontal_run(trained_run, tmp_path / "b")], a, "frontal", overwrite=True)
    assert sha256(a / "frontal" / "fold_1" / "best.pdparams") == before   # nothing lost
    assert main(["ensemble", "--out", str(tmp_path / "pool"), str(a), str(a)]) == 0
    assert main(["ensemble", "--out", str(tmp_path / "pool"), str(a), str(a)]) != 0   # exists
    assert main(["ensemble", "--out", str(tmp_path / "pool"), "--overwrite", str(a), str(a)]) == 0


@pytest.fixture
def calibration_npz(tmp_path):
    """Fresh marker phantoms: 6 with the marker (positive), 4 without (negative)."""
    rng = np.random.default_rng(11)
    names, fr, sg, rows, neg = [], [], [], [], []
    for i in range(10):
        n = int(rng.integers(50, 80))
        l3 = int(rng.integers(8, n - 8))
        negative = i >= 6
        hu = marker_phantom(n=n, l3=l3, seed=50 + i, markers=() if negative else None)
        names.append(f"cal{i}")
        fr.append(mip(hu, "frontal", MARKER_SPACING).astype(np.int16))
        sg.append(mip(hu, "sagittal", MARKER_SPACING).astype(np.int16))
        rows.append(np.nan if negative else float(l3))
        neg.append(negative)
    path = tmp_path / "cal" / "l3_dataset.npz"
    path.parent.mkdir()
    write_l3_npz(path, L3Dataset(names, fr, sg, np.array([[4.0, 4.0, 2.0]] * 10),
                                 {"a1": np.array(rows)}, negative=np.array(neg)))
    (path.parent / "length_mm.json").write_text(json.dumps(
        {n: (len(f) - 1) * MARKER_SPACING[0] for n, f in zip(names, fr)}))
    return path


def test_calibration_chooses_the_threshold_on_the_ensembles_own_confidences(trained_run, tmp_path,
                                                                            calibration_npz):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    decision = calibrate(run, calibration_npz)
    cases = pd.read_csv(run / "calibration_cal" / "per_case.csv")
    for view in ("frontal", "sagittal", "fused"):
        rows = cases[(cases["view"] == view) & (cases["folds"] == "ensemble")]
        # npz z = -row * 2 mm: a peak within 15 mm of either end is never found (scan_end)
        length = rows["name"].map(json.loads((calibration_npz.parent / "length_mm.json").read_text()))
        at_end = np.minimum(-rows["pred_z_mm"], length + rows["pred_z_mm"]) < 15.0
        expected, chosen = choose_threshold(np.where(at_end, 0.0, rows["confidence"]),
                                            rows["negative"], np.nan)
        entry = decision["views"][view]
        assert chosen and entry["threshold"] == pytest.approx(expected, abs=1e-4)   # CSV: 4 decimals
        assert entry["calibration"]["positives"] == 6 and entry["calibration"]["negatives"] == 4
        assert "calibrated on the ensemble's own confidences on cal" in entry["threshold_method"]
    # prediction reads it
    loc = load_localiser(run, "frontal", backend="dygraph")
    assert loc.threshold == pytest.approx(decision["views"]["frontal"]["threshold"])
    assert loc.threshold_source == "eval/decision.json"
    # a second calibration does not silently replace the first
    before = (run / "eval" / "decision.json").read_text()
    with pytest.raises(InputError, match="already holds thresholds"):
        calibrate(run, calibration_npz)
    assert (run / "eval" / "decision.json").read_text() == before
    again = calibrate(run, calibration_npz, overwrite=True)
    assert again["views"]["frontal"]["calibration"]["replaced_threshold"] == pytest.approx(
        decision["views"]["frontal"]["threshold"])
    assert read_decision(run)["views"]["frontal"]["threshold"] == pytest.approx(
        decision["views"]["frontal"]["threshold"])


def test_a_k_fold_evaluation_does_not_silently_undo_a_calibration(trained_run, tmp_path,
                                                                  calibration_npz):
    from l3loc.evaluate import evaluate_experiment

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    calibrated = calibrate(run, calibration_npz)["views"]["frontal"]["threshold"]
    with pytest.raises(InputError, match="chosen by l3loc calibrate"):
        evaluate_experiment(run, plots=False)
    assert read_decision(run)["views"]["frontal"]["threshold"] == calibrated
    evaluate_experiment(run, plots=False, overwrite=True)
    assert "calibration" not in read_decision(run)["views"]["frontal"]


def test_calibration_needs_positive_and_negative_cases(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    with pytest.raises(InputError, match="a threshold needs both"):
        calibrate(run, trained_run.parents[1] / "d.npz")   # positives only
    assert not (run / "eval" / "decision.json").exists()
    with pytest.raises(InputError, match="no trained fold"):
        calibrate(tmp_path, trained_run.parents[1] / "d.npz")


def _counted(trained_run, dest, threshold=0.3):
    """The trained marker run with a frontal threshold as evaluation records it."""
    from l3loc.runs import weight_hashes, write_decision

    shutil.copytree(trained_run, dest)
    (dest / "eval").mkdir(exist_ok=True)
    write_decision(dest / "eval", {"frontal": {"threshold": threshold, "threshold_method": "k-fold"}},
                   "frontal", "profile", weight_hashes(dest))
    return dest


def test_composed_model_counts_with_one_models_frontal_nets_and_places_with_anothers_sagittal(
        trained_run, tmp_path):
    """`l3loc compose`: the counting model's frontal folds and threshold, the placing model's
    sagittal folds, rebuilt as a run's folds when the placing model is an export (the weights
    equal the trained ones), loaded as a refined model that decides with the frontal threshold."""
    from l3loc.export import export_experiment
    from l3loc.io.checkpoint import load_checkpoint
    from l3loc.run_ensemble import COMPOSED_FROM, compose_refined

    counting = _counted(trained_run, tmp_path / "counting")
    export_experiment(trained_run, tmp_path / "placing", views=["sagittal"])
    assert not (tmp_path / "placing" / "sagittal" / "fold_1" / "best.pdparams").exists()
    out = tmp_path / "composed"
    assert main(["compose", "--counting", str(counting), "--placing", str(tmp_path / "placing"),
                 "--out", str(out)]) == 0
    assert sha256(out / "frontal" / "fold_1" / "best.pdparams") == \
        sha256(trained_run / "frontal" / "fold_1" / "best.pdparams")
    rebuilt = load_checkpoint(out / "sagittal" / "fold_1" / "best.pdparams")
    trained = load_checkpoint(trained_run / "sagittal" / "fold_1" / "best.pdparams")
    assert set(rebuilt) == set(trained)
    for key, t in trained.items():
        np.testing.assert_array_equal(np.asarray(rebuilt[key]), np.asarray(t), err_msg=key)
    decision = read_decision(out)
    assert decision["best_view"] == "refined" and decision["views"]["refined"]["threshold"] == 0.3
    assert json.loads((out / COMPOSED_FROM).read_text())["placing"] == str(tmp_path / "placing")
    loc = load_localiser(out, backend="dygraph")
    assert (loc.view, loc.placing, loc.threshold) == ("refined", "sagittal", 0.3)
    with pytest.raises(InputError, match="already holds folds"):
        compose_refined(counting, tmp_path / "placing", out)
    again = compose_refined(out, out, tmp_path / "again")   # a refined model composed again
    assert len(again["folds"]) == 2
    method = read_decision(tmp_path / "again")["views"]["refined"]["threshold_method"]
    assert method.count("refined decides as its frontal nets do") == 1, method


def test_composing_refuses_an_unevaluated_counter_a_missing_view_and_its_own_inputs(trained_run, tmp_path):
    from l3loc.run_ensemble import compose_refined

    counting = _counted(trained_run, tmp_path / "counting")
    with pytest.raises(InputError, match="no evaluated frontal threshold"):
        compose_refined(trained_run, trained_run, tmp_path / "a")
    with pytest.raises(InputError, match="no sagittal fold"):
        compose_refined(counting, frontal_run(trained_run, tmp_path / "f"), tmp_path / "b")
    with pytest.raises(InputError, match="is one of the composed models"):
        compose_refined(counting, trained_run, counting, overwrite=True)
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    cfg = load_config(other / "sagittal" / "fold_1" / "config.yaml")
    cfg["preprocess"]["spacing_mm"] = 3.0
    save_config(cfg, other / "sagittal" / "fold_1" / "config.yaml")
    with pytest.raises(InputError, match="pixel size"):
        compose_refined(counting, other, tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
