"""shipping + api: a trained, evaluated run becomes the shipped model; `l3loc predict` without a
model and `l3loc.find_l3` run it, from another working directory, and agree with each other."""
import json
import math

import numpy as np
import pandas as pd
import pytest

import l3loc
from l3loc.cli import main
from l3loc.errors import InputError
from l3loc.io.volume import read_volume, write_volume
from l3loc.placement import PLACING_WINDOW_MM
from l3loc.shipping import (METADATA, MODEL_CARD, REFERENCE_FIELDS, SHIPPED_ENV,
                            require_shipped_model, ship_model, shipped_model_dir)
from conftest import MARKER_SPACING as SPACING, MARKER_Z_FIRST as Z_FIRST, marker_phantom as phantom

N, L3 = 64, 24  # the test scan: canonical slice 24 of 64 = file slice 39 (NIfTI is stored I->S)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return write_volume(tmp_path_factory.mktemp("scan") / "scan.nii.gz",
                        phantom(n=N, l3=L3, seed=200), SPACING, Z_FIRST)


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, trained_run):
    """A copy of the session's trained marker run (others use it unevaluated), evaluated: that
    chooses the view and threshold the shipped model keeps."""
    import shutil

    from l3loc.evaluate import evaluate_experiment

    run = shutil.copytree(trained_run, tmp_path_factory.mktemp("run") / "marker")
    evaluate_experiment(run, plots=False)
    return run


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, evaluated_run, scan):
    root = tmp_path_factory.mktemp("shipped")
    dest = ship_model(evaluated_run, "marker-test", root=root, reference_scan=scan)
    return root, dest


@pytest.fixture
def use_shipped(shipped, monkeypatch, tmp_path):
    monkeypatch.setenv(SHIPPED_ENV, str(shipped[0]))
    monkeypatch.chdir(tmp_path)  # a user's folder: no repository, no work/
    return shipped[1]


def test_ship_writes_export_metadata_and_model_card(shipped, evaluated_run):
    root, dest = shipped
    assert shipped_model_dir(root) == dest
    meta = json.loads((dest / METADATA).read_text())
    summary = pd.read_csv(evaluated_run / "eval" / "summary.csv")
    best = summary.loc[summary["mean_mm"].idxmin()]
    assert meta["view"] == best["view"]
    assert meta["threshold"] == pytest.approx(best["threshold"])
    assert meta["model_id"] == "marker-test" and meta["l3loc"] == l3loc.__version__
    assert meta["training_commands"] and meta["weights_mb"] > 0
    for view, folds in meta["folds"].items():
        assert {p.name for p in (dest / view / f"fold_{folds[0]}").iterdir()} == {
            "model.json", "model.pdiparams", "config.yaml"}
    card = (dest / MODEL_CARD).read_text()
    assert "Synthetic CT phantoms only" in card and "TO FILL" in card
    assert "| fused | profile |" in card  # the k-fold table of eval/summary.md
    assert meta["reference"]["scan"] == "scan.nii.gz"
    assert set(REFERENCE_FIELDS) <= set(meta["reference"])
    with pytest.raises(InputError, match="--overwrite"):
        ship_model(evaluated_run, "marker-test", root=root)


def test_predict_without_a_model_uses_the_shipped_one(use_shipped, scan, tmp_path, capsys):
    assert main(["predict", str(scan), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "the shipped model marker-test" in out
    folder = tmp_path / "work" / "predict" / "marker-test"
    row = pd.read_csv(folder / "results.csv").iloc[0]
    assert row["status"] == "found" and abs(row["l3_slice"] - (N - 1 - L3)) <= 2
    assert (folder / "scan" / "qc.png").is_file()
    run = json.loads((folder / "run.json").read_text())
    import paddle

    assert run["model_id"] == "marker-test" and run["l3loc"] == l3loc.__version__
    assert run["paddle"] == paddle.__version__ and run["device"] == "cpu"
    assert run["command"].startswith("l3loc predict")


def test_find_l3_is_the_same_record_as_the_command(use_shipped, scan, tmp_path):
    assert main(["predict", str(scan), "--device", "cpu", "--out", "cli"]) == 0
    row = pd.read_csv(tmp_path / "cli" / "results.csv").iloc[0]
    rec = l3loc.find_l3(scan, device="cpu")
    assert rec["qc_png"] is None and not (tmp_path / "scan").exists()  # nothing written
    from_volume = l3loc.find_l3(read_volume(scan), device="cpu")
    for r in (rec, from_volume):
        assert r["status"] == row["status"] and r["l3_slice"] == row["l3_slice"]
        assert r["confidence"] == pytest.approx(row["confidence"], abs=1e-6)
        assert r["backend"] == "predictor"
    written = l3loc.find_l3(scan, out_dir=tmp_path / "api", device="cpu")
    assert written["qc_png"] == "scan/qc.png" and (tmp_path / "api" / "scan" / "result.json").is_file()


def test_predict_cohort_writes_the_command_s_outputs(use_shipped, scan, tmp_path):
    recs = l3loc.predict_cohort([scan], tmp_path / "cohort",
                                device="cpu")
    assert [r["status"] for r in recs] == ["found"]
    assert {"results.csv", "index.html", "run.json"} <= {p.name for p in (tmp_path / "cohort").iterdir()}
    with pytest.raises(InputError, match="does not exist"):
        l3loc.predict_cohort([tmp_path / "missing.nii.gz"], tmp_path / "c2")


def test_shipped_model_gives_its_recorded_reference_result(use_shipped, scan):
    ref = json.loads((use_shipped / METADATA).read_text())["reference"]
    rec = l3loc.find_l3(scan, device="cpu")
    assert rec["status"] == ref["status"] and rec["l3_slice"] == ref["l3_slice"]
    assert rec["confidence"] == pytest.approx(ref["confidence"], abs=1e-5)


def test_no_shipped_model_is_a_one_line_error(tmp_path, monkeypatch, scan, capsys):
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(scan), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no shipped model is installed" in err and "l3loc train" in err
    with pytest.raises(InputError, match="no shipped model"):
        require_shipped_model()


def test_two_shipped_models_are_refused(shipped, tmp_path):
    import shutil

    for name in ("a", "b"):
        shutil.copytree(shipped[1], tmp_path / name)
    with pytest.raises(InputError, match="holds 2 shipped models"):
        shipped_model_dir(tmp_path)


def test_version_names_package_model_and_paddle(use_shipped, capsys, monkeypatch, tmp_path):
    from importlib import metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"l3loc {l3loc.__version__}" in out and "shipped model: marker-test" in out
    assert f"paddle: {metadata.version('paddlepaddle')}" in out
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "none"))
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "shipped model: none" in capsys.readouterr().out


def test_the_package_s_shipped_model_reproduces_its_reference(monkeypatch, real_data):
    """The model installed in l3loc/shipped (committed by the integrator) gives the result its
    metadata records on the real example CT."""
    monkeypatch.delenv(SHIPPED_ENV, raising=False)
    folder = shipped_model_dir()
    assert folder is not None, "the package ships no model (l3loc/shipped/<model_id>/)"
    meta = json.loads((folder / METADATA).read_text())
    ref = meta.get("reference")
    assert ref, f"{folder / METADATA} records no reference result (ship with --reference-scan)"
    scan = real_data / "totalseg_example_ct" / "ct.nii.gz"
    assert ref["scan"] == scan.name
    rec = l3loc.find_l3(scan, device="cpu")
    assert rec["status"] == ref["status"] and rec["l3_slice"] == ref["l3_slice"]
    assert rec["confidence"] == pytest.approx(ref["confidence"], abs=1e-4)
    assert math.isfinite(rec["confidence"])


def test_a_refined_model_ships_both_nets_and_decides_with_the_frontal_threshold(evaluated_run, scan,
                                                                               tmp_path):
    from l3loc.predict import predict_volume
    from l3loc.shipping import load_model

    dest = ship_model(evaluated_run, "marker-refined", view="refined", root=tmp_path)
    meta = json.loads((dest / METADATA).read_text())
    assert meta["view"] == "refined" and set(meta["folds"]) == {"frontal", "sagittal"}
    decision = json.loads((evaluated_run / "eval" / "decision.json").read_text())
    assert meta["threshold"] == pytest.approx(decision["views"]["frontal"]["threshold"])
    assert f"sagittal nets' peak of the same level within {PLACING_WINDOW_MM:g} mm" in (dest / MODEL_CARD).read_text()
    refined, frontal = load_model(dest), load_model(dest, view="frontal")
    assert (refined.view, refined.placing, refined.threshold) == ("refined", "sagittal", frontal.threshold)
    ct = read_volume(scan)
    a, b = predict_volume(ct, refined), predict_volume(ct, frontal)
    assert a["view"] == "refined" and (a["status"], a["confidence"]) == (b["status"], b["confidence"])
    assert abs(a["l3_z_mm"] - b["l3_z_mm"]) <= 10.0 + 1e-6
