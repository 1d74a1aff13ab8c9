"""Evaluation: exact ("perfect") and shifted maps through the model seam, fold isolation, the
decision statuses, the output files, and one real tiny trained model end to end."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.config import load_config, save_config
from l3loc.evaluate import evaluate_experiment
from l3loc.runs import latest_experiment
from l3loc.io.npz import L3Dataset, write_l3_npz
from l3loc.labels import band_target, level_targets
from l3loc.levels import LEVELS, nominal_distance_mm
from l3loc.splits import load_or_create_splits

ROOT = Path(__file__).resolve().parents[1]
#: Rows (1 mm) of every level below L3 (negative: above) in a nominal spine.
NOMINAL_FROM_L3 = np.array([nominal_distance_mm("L3", k) for k in LEVELS])


def make_experiment(tmp_path, cases, k=2, views=("frontal", "sagittal"), name="exp",
                    levels=False):
    """A run folder as the engine leaves it, without training: splits.json and, per view and
    fold, config.yaml and a placeholder best.pdparams (the tests plug in their own maps).

    ``cases``: (height in native rows, L3 native row or None, slice thickness mm). Each MIP is
    air (-1000 HU) with a one-row bone marker (1200 HU) across the middle columns at the L3 row,
    so a "perfect" model can read the label back from the image. ``levels``: a model with one
    channel per level, every level at its nominal distance from L3 (``level_rows``).
    """
    images, rows, spacings, negative = [], [], [], []
    for height, row, thickness in cases:
        img = np.full((height, 40), -1000.0, dtype=np.float32)
        if row is not None:
            img[row, 12:28] = 1200.0
        images.append(img)
        rows.append(np.nan if row is None else float(row))
        spacings.append([1.0, 1.0, thickness])
        negative.append(row is None)
    names = [f"case{i:02d}" for i in range(len(cases))]
    extra = {"level_rows": np.array(rows)[:, None] + NOMINAL_FROM_L3[None]} if levels else {}
    ds = L3Dataset(names, images, [im.copy() for im in images], np.array(spacings),
                   {"a1": np.array(rows)}, np.array(negative), extra)
    write_l3_npz(tmp_path / "d.npz", ds)
    cfg = load_config(None, [
        f"work_dir={tmp_path / 'work'}", f"data.source={tmp_path / 'd.npz'}",
        f"data.cache_dir={tmp_path / 'cache'}", "preprocess.spacing_mm=1.0",
        "preprocess.canvas=[32,40]", f"train.folds={k}",
        "label.half_height_mm=2.0"] + ([f"label.levels=[{','.join(LEVELS)}]"] if levels else []))
    cfg["experiment"] = name
    exp = tmp_path / "work" / name
    splits = load_or_create_splits(exp / "splits.json", names, k, 0)
    for view in views:
        for fold in range(1, k + 1):
            d = exp / view / f"fold_{fold}"
            save_config(cfg, d / "config.yaml")
            (d / "best.pdparams").write_bytes(b"not a checkpoint")
    return exp, splits


def marker_row(image):
    """Sub-pixel row of the bone marker: intensity centroid of the middle columns (None if none)."""
    col = image[:, 12:28].sum(axis=1).astype(np.float64)
    return None if col.sum() == 0 else float(col @ np.arange(len(col)) / col.sum())


def band_loader(shift_rows=0.0, per_fold_shift=False, second_band_mm=None):
    """A model seam: maps equal to the true band (shifted by ``shift_rows``, plus the fold number
    with ``per_fold_shift``; with a second equal band ``second_band_mm`` below)."""
    def loader(fold_dir, cfg):
        fold = int(Path(fold_dir).name.split("_")[1])
        shift = shift_rows + (fold if per_fold_shift else 0)
        spacing = cfg["preprocess"]["spacing_mm"]

        def map_fn(image):
            row = marker_row(image)
            h, w = image.shape
            if row is None:
                return np.zeros((h, w), dtype=np.float32)
            out = band_target(h, w, row + shift, 2.0, spacing, (0.35, 0.65))
            if second_band_mm is not None:
                out = np.maximum(out, band_target(h, w, row + second_band_mm / spacing, 2.0,
                                                  spacing, (0.35, 0.65)))
            return out
        return map_fn
    return loader


# heights above the 32-row canvas; L3 at the first rows, mid-scan and the last rows;
# 2.5 mm slices with even rows land on whole 1 mm rows (the marker stays symmetric)
EDGE_CASES = [(100, 1, 1.0), (100, 2, 1.0), (90, 45, 1.0), (100, 97, 1.0), (100, 98, 1.0),
              (40, 20, 2.5), (40, 2, 2.5), (40, 38, 2.5), (33, 16, 1.0), (120, 60, 1.0)]


def test_perfect_model_is_within_half_a_mm_everywhere(tmp_path):
    exp, _ = make_experiment(tmp_path, EDGE_CASES)
    summary = evaluate_experiment(exp, decoder="profile", model_loader=band_loader(), plots=False)
    per_case = pd.read_csv(exp / "eval" / "per_case.csv")
    assert set(per_case["view"]) == {"frontal", "sagittal", "fused", "refined"}
    assert len(per_case) == 4 * len(EDGE_CASES)
    worst = per_case.loc[per_case["error_mm"].idxmax()]
    # L3 one row from an edge: the band's outer row is cut off, its centre moves half a row
    assert per_case["error_mm"].max() <= 0.5 + 1e-6, worst.to_dict()
    edge = per_case[per_case["name"].isin(["case00", "case04"])]
    np.testing.assert_allclose(edge["error_mm"], 0.5, atol=1e-6)
    np.testing.assert_allclose(per_case.loc[~per_case["name"].isin(["case00", "case04"]),
                                            "error_mm"], 0.0, atol=1e-6)
    # an L3 within 15 mm of the scan's first or last row is never found (decode.scan_end)
    at_end = per_case["name"].isin(["case00", "case01", "case03", "case04", "case06", "case07"])
    assert (per_case.loc[~at_end, "status"] == "found").all()
    assert (per_case.loc[at_end, "status"] == "ambiguous").all()
    # slices: 2.5 mm cases -> error_slices = error_mm / 2.5
    thick = per_case[per_case["name"] == "case05"]
    np.testing.assert_allclose(thick["error_slices"], thick["error_mm"] / 2.5)
    assert list(summary["view"]) == ["frontal", "sagittal", "fused", "refined"]


def test_argmax_decoder_of_a_perfect_band_is_biased_by_its_half_height(tmp_path):
    exp, _ = make_experiment(tmp_path, [(100, 40, 1.0), (100, 60, 1.0), (80, 30, 1.0),
                                        (80, 50, 1.0)], views=("sagittal",))
    summary = evaluate_experiment(exp, decoder="argmax", model_loader=band_loader(), plots=False)
    # flat band rows L3-2 .. L3+2: numpy's argmax takes the first, 2 mm above
    assert summary.loc[0, "mean_mm"] == pytest.approx(2.0)
    assert summary.loc[0, "bias_mm"] == pytest.approx(-2.0)


@pytest.mark.parametrize("decoder", ["argmax", "profile"])
def test_map_shifted_10_rows_down_gives_10mm(tmp_path, decoder):
    cases = [(100, r, 1.0) for r in (20, 35, 50, 60)]
    exp, _ = make_experiment(tmp_path, cases, views=("frontal",))
    shift = 12.0 if decoder == "argmax" else 10.0  # argmax lands 2 rows above the band centre
    summary = evaluate_experiment(exp, views=["frontal"], decoder=decoder,
                                  model_loader=band_loader(shift), plots=False)
    assert summary.loc[0, "mean_mm"] == pytest.approx(10.0, abs=1e-6)
    assert summary.loc[0, "bias_mm"] == pytest.approx(10.0, abs=1e-6)
    assert summary.loc[0, "within_10mm_pct"] == 100.0 and summary.loc[0, "within_5mm_pct"] == 0.0


def test_all_zero_map_is_not_found(tmp_path):
    exp, _ = make_experiment(tmp_path, [(60, 30, 1.0)] * 4, views=("sagittal",))
    summary = evaluate_experiment(exp, model_loader=lambda d, c: lambda im: np.zeros_like(im),
                                  plots=False)
    row = summary.iloc[0]
    # no negative case to choose a threshold on: the config's eval.threshold (0.5) is used
    assert row["not_found"] == 4 and row["threshold"] == 0.5 and not row["threshold_chosen"]
    assert row["positive_detected_pct"] == 0.0


def test_two_equal_peaks_30mm_apart_are_ambiguous(tmp_path):
    exp, _ = make_experiment(tmp_path, [(100, 30, 1.0)] * 4, views=("sagittal",))
    evaluate_experiment(exp, model_loader=band_loader(second_band_mm=30.0), plots=False)
    per_case = pd.read_csv(exp / "eval" / "per_case.csv")
    assert (per_case["status"] == "ambiguous").all()
    pairs = {tuple(sorted(p)) for p in per_case[["pred_row", "second_row"]].round(3).to_numpy()}
    assert pairs == {(30.0, 60.0)}


def test_threshold_is_chosen_between_negatives_and_positives(tmp_path):
    cases = [(80, 40, 1.0), (80, None, 1.0)] * 3
    exp, _ = make_experiment(tmp_path, cases, views=("frontal",))
    summary = evaluate_experiment(exp, model_loader=band_loader(), plots=False)
    row = summary.iloc[0]
    assert row["threshold_chosen"] and 0.0 < row["threshold"] < 0.9
    assert (row["negative_right"], row["n_negative"]) == (3, 3)
    assert (row["positive_right"], row["n_positive"]) == (3, 3)
    assert row["negative_accuracy_pct"] == 100.0 and row["not_found"] == 3


def test_negatives_peaking_at_the_scans_end_do_not_set_the_threshold(tmp_path):
    """The most confident negative phantoms peak at the scan's lower end (a chest-only scan's
    last vertebra); such a peak is never found, so the threshold is chosen as if it were 0."""
    cases = [(80, 40, 1.0), (80, None, 1.0)] * 3

    def loader(fold_dir, cfg):
        def map_fn(image):
            row = marker_row(image)
            h, w = image.shape
            at, scale = (h - 4, 0.9) if row is None else (row, 0.6)   # negatives: 3 mm from the end
            return scale * band_target(h, w, at, 2.0, 1.0, (0.35, 0.65))
        return map_fn

    summary = evaluate_experiment(exp := make_experiment(tmp_path, cases, views=("frontal",))[0],
                                  model_loader=loader, plots=False)
    row = summary.iloc[0]
    # midway between 0 and the positives' peak (~0.55); counted at 0.9 the negatives would
    # have pushed it to just under the positives' peak
    assert row["threshold_chosen"] and 0.2 < row["threshold"] < 0.4
    assert row["positive_right"] == 3 and row["found"] == 3   # no negative found
    per_case = pd.read_csv(exp / "eval" / "per_case.csv")
    assert set(per_case.loc[per_case["negative"], "status"]) == {"ambiguous"}
    assert set(per_case.loc[~per_case["negative"], "status"]) == {"found"}


def test_each_fold_is_evaluated_by_its_own_model_on_its_own_cases(tmp_path):
    cases = [(100, 30 + 3 * i, 1.0) for i in range(9)]
    exp, splits = make_experiment(tmp_path, cases, k=3, views=("sagittal",))
    # fold K's model is shifted by K rows: an error of K mm on a case proves which model ran
    evaluate_experiment(exp, decoder="profile", model_loader=band_loader(per_fold_shift=True),
                        plots=False)
    per_case = pd.read_csv(exp / "eval" / "per_case.csv")
    for k in (1, 2, 3):
        rows = per_case[per_case["fold"] == k]
        assert list(rows["name"]) == splits[k - 1]
        np.testing.assert_allclose(rows["error_mm"], float(k), atol=1e-6)
    per_fold = pd.read_csv(exp / "eval" / "per_fold.csv")
    np.testing.assert_allclose(per_fold["mean_mm"], [1.0, 2.0, 3.0], atol=1e-6)


def test_narrowing_to_a_fold_and_view(tmp_path):
    cases = [(60, 30, 1.0)] * 6
    exp, splits = make_experiment(tmp_path, cases, k=3)
    summary = evaluate_experiment(exp, views=["frontal"], folds=[2], model_loader=band_loader(),
                                  plots=False, out_dir=tmp_path / "out")
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    assert list(summary["view"]) == ["frontal"]
    assert set(per_case["fold"]) == {2} and list(per_case["name"]) == splits[1]


def test_fusing_views_with_different_row_grids_is_refused(tmp_path):
    from l3loc.errors import InputError

    exp, _ = make_experiment(tmp_path, [(60, 30, 1.0)] * 4, k=2)
    cfg = load_config(exp / "sagittal" / "fold_1" / "config.yaml")
    cfg["preprocess"]["spacing_mm"] = 2.0
    save_config(cfg, exp / "sagittal" / "fold_1" / "config.yaml")
    with pytest.raises(InputError, match="cannot fuse: frontal spacing 1.0 mm, sagittal 2.0 mm"):
        evaluate_experiment(exp, views=["fused"], folds=[1], model_loader=band_loader(),
                            plots=False)
    # not asked for by name: the single views are still reported
    summary = evaluate_experiment(exp, folds=[1], model_loader=band_loader(), plots=False)
    assert list(summary["view"]) == ["frontal", "sagittal"]


def test_latest_experiment_is_the_last_trained(tmp_path):
    import os

    work = tmp_path / "work"
    for name, t in (("old", 1_000_000), ("new", 2_000_000)):
        (work / name / "sagittal" / "fold_1").mkdir(parents=True)
        (work / name / "splits.json").write_text("{}")
        log = work / name / "sagittal" / "fold_1" / "train_log.csv"
        log.write_text("epoch\n")
        for p in (log, work / name / "splits.json", work / name):
            os.utime(p, (t, t))
    os.utime(work / "old" / "sagittal" / "fold_1" / "train_log.csv", (3_000_000, 3_000_000))
    assert latest_experiment(work) == work / "old"
    (work / "cache").mkdir()  # a folder without splits.json is not an experiment
    assert latest_experiment(work) == work / "old"


def test_trained_tiny_model_end_to_end_with_the_tool(tmp_path, monkeypatch):
    """Train fold 1 of both views for two steps, then run tools/eval.py on the experiment."""
    from l3loc.engine import train_fold

    exp, _ = make_experiment(tmp_path, [(70, 20 + 4 * i, 2.0) for i in range(6)], views=())
    cfg = load_config(None, [
        f"work_dir={tmp_path / 'work'}", f"data.source={tmp_path / 'd.npz'}",
        f"data.cache_dir={tmp_path / 'cache'}", "preprocess.spacing_mm=2.0",
        "preprocess.canvas=[32,40]", "train.folds=2",
        "model.base_channels=4", "model.depth=2", "train.epochs=1", "train.iters_per_epoch=2",
        "train.batch_size=2"])
    cfg["experiment"] = "exp"
    for view in ("frontal", "sagittal"):
        train_fold(cfg, view, 1, overwrite=True)
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "eval.py"), "--work-dir",
                          str(tmp_path / "work")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "fused" in out.stdout
    ev = exp / "eval"
    for f in ("per_case.csv", "per_fold.csv", "summary.csv", "summary.md", "cumulative_error.png",
              "per_fold.png", "training_curves.png", "worst_cases.png",
              "profiles/frontal_fold1.npz", "profiles/sagittal_fold1.npz"):
        assert (ev / f).is_file(), f
    per_case = pd.read_csv(ev / "per_case.csv")
    # fold 2 was not trained: only fold 1's three held-out cases, in four views
    assert len(per_case) == 3 * 4 and per_case["error_mm"].notna().all()
    # the decision prediction reads: per view the threshold of summary.csv, the
    # view of lowest mean error, the weights evaluated
    decision = json.loads((ev / "decision.json").read_text())
    summary = pd.read_csv(ev / "summary.csv").set_index("view")
    assert set(decision["views"]) == {"frontal", "sagittal", "fused", "refined"}
    assert decision["views"]["refined"]["threshold"] == decision["views"]["frontal"]["threshold"]
    assert decision["views"]["fused"]["threshold"] == pytest.approx(summary.loc["fused", "threshold"],
                                                                   abs=1e-4)
    best = summary["mean_mm"].idxmin()
    assert decision["best_view"] == best
    assert decision["decoder"] == "profile"
    assert set(decision["weights"]) == {"frontal/fold_1", "sagittal/fold_1"}
    # a second run with another decoder reuses the saved profiles: no network is loaded
    import l3loc.fold_profiles

    def no_network(*args):
        raise AssertionError("the network was loaded again")

    monkeypatch.setattr(l3loc.fold_profiles, "load_fold_model", no_network)
    summary = evaluate_experiment(exp, decoder="argmax", plots=False, out_dir=tmp_path / "again")
    assert list(summary["decoder"]) == ["argmax"] * 4
    assert math.isfinite(summary.loc[0, "mean_mm"])
    # the tool turns a bad experiment name into one line and exit status 2
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "eval.py"), "--work-dir",
                          str(tmp_path / "work"), "--experiment", "nope"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr
    assert json.loads((exp / "splits.json").read_text())["k"] == 2


def test_thresholds_are_cross_fitted_over_folds(tmp_path):
    """Fold 1's maps are scaled by 0.3, fold 2's by 1, negatives are empty. Fold 1's cases are
    scored with the threshold chosen on fold 2 alone (halfway to its strong peaks), so its weak
    positives fall below it; the run's threshold, chosen on both folds pooled, keeps them."""
    cases = [(80, 40, 1.0), (80, None, 1.0)] * 4
    exp, splits = make_experiment(tmp_path, cases, views=("frontal",))
    perfect = band_loader()

    def loader(fold_dir, cfg):
        scale = 0.3 if Path(fold_dir).name == "fold_1" else 1.0
        fn = perfect(fold_dir, cfg)
        return lambda image: scale * fn(image)

    summary = evaluate_experiment(exp, model_loader=loader, plots=False)
    row = summary.iloc[0]
    assert row["threshold_method"].startswith("cross-fitted")
    per_case = pd.read_csv(exp / "eval" / "per_case.csv")
    pos = per_case[~per_case["negative"]]
    weak = pos[pos["fold"] == 1]["confidence"].max()
    strong = pos[pos["fold"] == 2]["confidence"].min()
    assert 0 < weak < 0.5 * strong
    # the run's threshold: halfway between the negatives (0) and the weakest positives
    assert row["threshold"] == pytest.approx(weak / 2, rel=0.01)
    fold1 = per_case[per_case["fold"] == 1]
    fold2 = per_case[per_case["fold"] == 2]
    assert np.allclose(fold1["threshold"], strong / 2, rtol=0.01)  # chosen on fold 2
    assert np.allclose(fold2["threshold"], weak / 2, rtol=0.01)    # chosen on fold 1
    assert set(fold1.loc[~fold1["negative"], "status"]) == {"not_found"}
    assert set(fold2.loc[~fold2["negative"], "status"]) == {"found"}
    assert "cross-fitted" in (exp / "eval" / "summary.md").read_text()


def test_one_fold_threshold_is_marked_optimistic(tmp_path):
    cases = [(80, 40, 1.0), (80, None, 1.0)] * 3
    exp, _ = make_experiment(tmp_path, cases, views=("frontal",))
    summary = evaluate_experiment(exp, folds=[1], model_loader=band_loader(), plots=False)
    assert "optimistic" in summary.iloc[0]["threshold_method"]


def nominal_level_rows(image, spacing, high_l3_rows=()):
    """Every level's row at its nominal distance from the marker (L3); every level one vertebra
    higher (L2 named "L3") on the cases whose L3 row is in ``high_l3_rows``."""
    l3 = marker_row(image)
    rows = l3 + NOMINAL_FROM_L3 / spacing
    return rows - (rows[3] - rows[2]) if round(l3) in high_l3_rows else rows


def level_loader(swapped_l3_rows=()):
    """A model seam for a model with level channels: every level's band at its nominal distance
    from the marker (L3); on the cases whose L3 is at ``swapped_l3_rows``, the L2 and L3
    channels swapped."""
    def loader(fold_dir, cfg):
        def map_fn(image):
            l3 = marker_row(image)
            rows = l3 + NOMINAL_FROM_L3 / cfg["preprocess"]["spacing_mm"]
            if round(l3) in swapped_l3_rows:
                rows[[2, 3]] = rows[[3, 2]]
            return level_targets(*image.shape, rows, 2.0, cfg["preprocess"]["spacing_mm"])
        return map_fn
    return loader


# every level inside the image: T12 105 mm above L3, S1 104.5 mm below
LEVEL_CASES = [(240, r, 1.0) for r in (110, 112, 115, 118, 120, 123, 126, 130)]


def test_perfect_level_map_gives_every_level_within_half_a_mm(tmp_path):
    exp, _ = make_experiment(tmp_path, LEVEL_CASES, levels=True)
    evaluate_experiment(exp, model_loader=level_loader(), plots=False)
    per_level = pd.read_csv(exp / "eval" / "per_level.csv")
    cases = pd.read_csv(exp / "eval" / "per_level_case.csv")
    # a row per view and level, and the L3 channel beside the sequence's L3
    assert list(per_level[per_level["view"] == "fused"]["level"]) == [*LEVELS, "L3"]
    assert list(per_level["decoder"][-2:]) == ["sequence", "L3 channel"]
    assert set(per_level["view"]) == {"frontal", "sagittal", "fused", "refined"}
    assert (per_level["n_present"] == len(LEVEL_CASES)).all()
    assert (per_level["right_level"] == len(LEVEL_CASES)).all()
    assert per_level["max_mm"].max() <= 0.5 + 1e-6
    assert (cases["status"] == "found").all() and cases["error_mm"].max() <= 0.5 + 1e-6
    text = (exp / "eval" / "summary.md").read_text()
    assert "## Every level" in text and "| fused | S1 | sequence |" in text


def test_swapped_levels_are_flagged_ambiguous_and_counted(tmp_path):
    exp, _ = make_experiment(tmp_path, LEVEL_CASES, views=("sagittal",), levels=True)
    evaluate_experiment(exp, model_loader=level_loader(swapped_l3_rows=(115, 123)), plots=False)
    per_level = pd.read_csv(exp / "eval" / "per_level.csv").set_index(["level", "decoder"])
    cases = pd.read_csv(exp / "eval" / "per_level_case.csv", keep_default_na=False)
    seq_l3 = per_level.loc[("L3", "sequence")]
    assert seq_l3["ambiguous"] == 2 and seq_l3["wrong_level_found"] == 0
    flagged = cases[(cases["level"] == "L3") & (cases["decoder"] == "sequence")
                    & (cases["status"] == "ambiguous")]
    assert sorted(flagged["true_row"].round()) == [115, 123]
    assert (flagged["reason"].str.len() > 0).all()
    # the single L3 channel, on the same cases, confidently answers L2 on both
    channel = per_level.loc[("L3", "L3 channel")]
    assert channel["wrong_level_found"] == 2 and channel["ambiguous"] == 0


def test_fused_views_naming_different_vertebrae_are_flagged_not_found_wrong(tmp_path):
    """The sagittal net names L2 "L3" (every level one vertebra high) on two cases and is surer
    than the frontal net, which counts right: the views' mean puts L3 on L2, but the frontal
    view's own claim contradicts it, so the fused decision is ambiguous, not a wrong level."""
    exp, _ = make_experiment(tmp_path, LEVEL_CASES, levels=True)
    high = (115, 123)

    def loader(fold_dir, cfg):
        spacing = cfg["preprocess"]["spacing_mm"]

        def map_fn(image):
            if "sagittal" in str(fold_dir):
                return level_targets(*image.shape, nominal_level_rows(image, spacing, high), 2.0,
                                     spacing)
            return 0.7 * level_targets(*image.shape, nominal_level_rows(image, spacing), 2.0,
                                       spacing)
        return map_fn

    # threshold 0.3: the mean's L3 on L2 (0.40 high there) passes it, so does the frontal view's own
    evaluate_experiment(exp, model_loader=loader, plots=False, threshold=0.3)
    cases = pd.read_csv(exp / "eval" / "per_level_case.csv", keep_default_na=False)
    l3 = cases[(cases["level"] == "L3") & (cases["decoder"] == "sequence")].set_index("view")
    fused, sagittal = l3.loc["fused"], l3.loc["sagittal"]
    assert ((sagittal["status"] == "found") & ~sagittal["right_level"]).sum() == 2
    flagged = fused[fused["status"] == "ambiguous"]
    assert sorted(flagged["true_row"].round()) == list(high)
    assert flagged["reason"].str.contains("the frontal view on its own puts L3").all()
    assert not (fused["status"] == "found")[~fused["right_level"]].any()     # no wrong level found
    assert (fused[~fused["true_row"].round().isin(high)]["status"] == "found").all()


def test_trained_multi_level_model_through_the_kfold_and_its_profile_cache(trained_levels_run,
                                                                             caplog):
    """Real checkpoints with level channels: every channel's profile is cached and read back
    (same per-level figures), and training logged each level's validation error."""
    import logging

    log_cols = pd.read_csv(trained_levels_run / "sagittal" / "fold_1" / "train_log.csv").columns
    assert {f"val_median_error_mm_{k}" for k in LEVELS if k != "L3"} <= set(log_cols)
    evaluate_experiment(trained_levels_run, plots=False)
    first = pd.read_csv(trained_levels_run / "eval" / "per_level.csv")
    cached = np.load(trained_levels_run / "eval" / "profiles" / "sagittal_fold1.npz")
    assert cached["values"].shape[0] == len(LEVELS)
    with caplog.at_level(logging.INFO, logger="l3loc"):
        evaluate_experiment(trained_levels_run, plots=False)
    assert "reusing the profiles" in caplog.text
    pd.testing.assert_frame_equal(first, pd.read_csv(trained_levels_run / "eval" / "per_level.csv"))
    assert list(first["level"]) == [*LEVELS, "L3"] and (first["n_present"] == 4).all()
