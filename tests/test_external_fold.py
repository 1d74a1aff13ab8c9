"""eval --data --fold K on an export folder (the shipped model's layout: <view>/fold_<K>/model.json,
no best.pdparams): the folds it has are its exported ones; a fold it lacks is refused by name."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import MARKER_SPACING, marker_phantom
from l3loc.cli import main
from l3loc.errors import InputError
from l3loc.export import export_experiment
from l3loc.external import evaluate_external
from l3loc.runs import WEIGHTS
from test_inference import make_run


@pytest.fixture(scope="module")
def export_and_npz(tmp_path_factory):
    """A standalone export of a 2-view x 2-fold run of random-weight nets (no training: seconds)
    and a 3-case npz of marker phantoms."""
    from l3loc.io.npz import L3Dataset, write_l3_npz
    from l3loc.mip import mip

    root = tmp_path_factory.mktemp("export_fold")
    run = make_run(root / "run", views=("frontal", "sagittal"), folds=(1, 2),
                   opts=[f"data.cache_dir={root / 'cache'}"])
    export_experiment(run, root / "standalone")
    hus = [marker_phantom(n=50, l3=20 + 5 * i, seed=i) for i in range(3)]
    ds = L3Dataset([f"c{i}" for i in range(3)],
                   [mip(hu, "frontal", MARKER_SPACING).astype(np.int16) for hu in hus],
                   [mip(hu, "sagittal", MARKER_SPACING).astype(np.int16) for hu in hus],
                   np.array([[4.0, 4.0, 2.0]] * 3), {"a1": np.array([20.0, 25.0, 30.0])})
    npz = root / "d.npz"
    write_l3_npz(npz, ds)
    return root / "standalone", npz


def test_export_has_no_training_weights(export_and_npz):
    standalone, _ = export_and_npz
    assert not list(standalone.rglob(WEIGHTS))
    assert (standalone / "sagittal" / "fold_2" / "model.json").is_file()


def test_fold_of_an_export_is_scored(export_and_npz, tmp_path):
    standalone, npz = export_and_npz
    summary = evaluate_external(standalone, npz, plots=False, folds=[1], out_dir=tmp_path / "one",
                                per_fold=True)
    assert set(zip(summary["view"], summary["folds"])) == {
        (v, f) for v in ("frontal", "sagittal", "fused", "refined") for f in ("ensemble", "fold 1")}
    assert (summary["n_positive"] == 3).all() and (summary["errors"] == 0).all()
    # the subset's ensemble is fold 1 alone: the same figures
    per_case = pd.read_csv(tmp_path / "one" / "per_case.csv")
    ens, one = (per_case[per_case["folds"] == f].reset_index(drop=True)
                for f in ("ensemble", "fold 1"))
    np.testing.assert_allclose(ens["confidence"], one["confidence"], atol=1e-6)


def test_eval_cli_fold_on_an_export(export_and_npz, tmp_path, capsys):
    standalone, npz = export_and_npz
    base = ["eval", "--experiment", str(standalone), "--data", str(npz), "--no-plots",
            "--device", "cpu"]
    assert main([*base, "--fold", "1", "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "per_case.csv").is_file()
    capsys.readouterr()
    assert main([*base, "--fold", "9", "--out", str(tmp_path / "nine")]) == 2
    err = capsys.readouterr().err
    assert "has fold(s) 9" in err and "frontal 1,2" in err and "sagittal 1,2" in err
    assert not (tmp_path / "nine" / "summary.csv").exists()


def test_missing_fold_names_the_folds_there_are(export_and_npz, tmp_path):
    standalone, npz = export_and_npz
    with pytest.raises(InputError, match=r"fold\(s\) 9 .*frontal 1,2; sagittal 1,2"):
        evaluate_external(standalone, npz, plots=False, folds=[9], out_dir=tmp_path / "nine")
