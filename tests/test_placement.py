"""The ``refined`` decision: the frontal view counts, the sagittal view places each row within
``PLACING_WINDOW_MM`` (l3loc.placement) — in a row profile, in prediction's decision and in the
k-fold evaluation; a placing view that names another vertebra moves nothing."""
import math

import numpy as np
import pandas as pd
import pytest

from l3loc.decode import Decision
from l3loc.evaluate import evaluate_experiment
from l3loc.inference import function_localiser
from l3loc.labels import level_targets
from l3loc.levels import LEVELS, level_decision
from l3loc.localisation import decide_maps
from l3loc.placement import PLACING_WINDOW_MM, placed_decision, placed_row
from l3loc.runs import REFINED, evaluated_threshold, nets_of, write_decision

from test_evaluate import LEVEL_CASES, NOMINAL_FROM_L3, make_experiment, nominal_level_rows  # noqa: E402
from test_predict import stub_cfg  # noqa: E402


def bump(n, centre, width=2.0):
    return np.exp(-0.5 * ((np.arange(n) - centre) / width) ** 2)


def test_a_row_moves_to_the_placing_peak_inside_the_window_only():
    profile = bump(200, 104.3)
    assert placed_row(100.0, profile, 1.0, 10.0) == pytest.approx(104.3, abs=0.05)
    # the peak 14 mm away: the highest point in the window is its edge, the row stays
    assert placed_row(90.0, profile, 1.0, 10.0) == 90.0
    # 2 mm pixels: 10 mm is 5 rows
    assert placed_row(50.0, bump(200, 53.0), 2.0, 10.0) == pytest.approx(53.0, abs=0.05)
    assert placed_row(50.0, bump(200, 56.0), 2.0, 10.0) == 50.0
    assert math.isnan(placed_row(math.nan, profile, 1.0, 10.0))
    assert placed_row(1.0, np.zeros(200), 1.0, 10.0) == 1.0   # nothing seen: argmax at the edge


def test_every_level_of_a_sequence_is_placed_and_the_status_is_the_counting_views():
    spacing, n = 1.0, 260
    l3 = 120.0
    truth = l3 + NOMINAL_FROM_L3 / spacing
    counting = np.stack([bump(n, r + 4.0) for r in truth])          # every level 4 mm low
    placing = np.stack([bump(n, r) for r in truth]) * 0.3            # exact, less sure
    channel = Decision("found", l3 + 4.0, 1.0, math.nan, 0.0)
    d = level_decision(counting, LEVELS, channel, spacing, 2.0, 0.5)
    assert d.status == "found" and d.row == pytest.approx(l3 + 4.0, abs=0.1)
    placed = placed_decision(d, placing, LEVELS, spacing, 2.0, PLACING_WINDOW_MM)
    assert (placed.status, placed.confidence, placed.reason) == (d.status, d.confidence, d.reason)
    assert placed.row == pytest.approx(l3, abs=0.1)
    np.testing.assert_allclose(placed.sequence.rows, truth, atol=0.1)
    # a placing view one vertebra high everywhere (about 35 mm): nothing moves
    high = np.stack([bump(n, r - 35.0) for r in truth])
    same = placed_decision(d, high, LEVELS, spacing, 2.0, PLACING_WINDOW_MM)
    assert same.row == d.row
    np.testing.assert_array_equal(same.sequence.rows, d.sequence.rows)


def test_prediction_decides_with_the_frontal_view_and_places_with_the_sagittal():
    cfg = stub_cfg()   # 2 mm pixels
    h, w, l3 = 120, 32, 60.0

    def frontal(image):
        return 0.9 * level_targets(h, w, [l3 + 3.0], 2.0, 2.0)[0]    # 6 mm low

    def sagittal(shift):
        return lambda image: 0.2 * level_targets(h, w, [l3 + shift], 2.0, 2.0)[0]

    image = np.zeros((h, w), dtype=np.float32)
    alone = function_localiser(frontal, cfg, views=("frontal",), threshold=0.5)
    own = decide_maps({"frontal": alone.views["frontal"].maps.fold_maps(image)}, alone)[1]
    assert own.status == "found" and own.row == pytest.approx(l3 + 3.0, abs=0.1)
    for shift, row in ((0.0, l3), (-17.0, l3 + 3.0)):   # exact; one vertebra (34 mm) high
        loc = function_localiser({"frontal": frontal, "sagittal": sagittal(shift)}, cfg,
                                 threshold=0.5, placing="sagittal")
        assert loc.view == REFINED
        per_view, d = decide_maps({v: vm.maps.fold_maps(image) for v, vm in loc.views.items()}, loc)
        assert (d.status, d.confidence) == (own.status, own.confidence)
        assert d.row == pytest.approx(row, abs=0.1)
        assert set(per_view) == {"frontal", "sagittal"}
    # the sagittal view's 0.2 is below the threshold: fused, the two views would not find L3
    fused = function_localiser({"frontal": frontal, "sagittal": sagittal(0.0)}, cfg, threshold=0.7)
    assert decide_maps({v: vm.maps.fold_maps(image) for v, vm in fused.views.items()},
                       fused)[1].status == "not_found"


def level_loader(frontal_shift_rows, sagittal_high=()):
    """Frontal maps with every level ``frontal_shift_rows`` low; sagittal maps exact, except one
    vertebra high on the cases whose L3 row is in ``sagittal_high``."""
    def loader(fold_dir, cfg):
        spacing = cfg["preprocess"]["spacing_mm"]

        def map_fn(image):
            if "frontal" in str(fold_dir):
                return level_targets(*image.shape, nominal_level_rows(image, spacing)
                                     + frontal_shift_rows, 2.0, spacing)
            return 0.6 * level_targets(*image.shape, nominal_level_rows(image, spacing, sagittal_high),
                                       2.0, spacing)
        return map_fn
    return loader


def test_kfold_refined_view_keeps_the_frontal_statuses_and_takes_the_sagittal_rows(tmp_path):
    exp, _ = make_experiment(tmp_path, LEVEL_CASES, levels=True)
    high = (115, 123)
    evaluate_experiment(exp, model_loader=level_loader(4.0, high), plots=False, threshold=0.3)
    cases = pd.read_csv(exp / "eval" / "per_level_case.csv")
    # S1's band is cut by the image's lower end on some cases: its peak is not the band's centre
    seq = cases[(cases["decoder"] == "sequence") & cases["present"] & (cases["level"] != "S1")]
    seq = seq.set_index(["view", "name", "level"]).sort_index()
    frontal, refined = seq.loc["frontal"], seq.loc[REFINED]
    assert (frontal["status"] == refined["status"]).all() and (refined["status"] == "found").all()
    assert frontal["error_mm"].between(3.9, 4.1).all()
    moved = ~refined.index.get_level_values("name").isin(
        [n for n, r in zip(frontal.xs("L3", level="level").index,
                           frontal.xs("L3", level="level")["true_row"]) if round(r) in high])
    assert (refined[moved]["error_mm"] < 0.2).all()
    # where the sagittal view names another vertebra, the frontal rows stay, at the right level
    assert refined[~moved]["error_mm"].between(3.9, 4.1).all() and refined["right_level"].all()
    per_case = pd.read_csv(exp / "eval" / "per_case.csv").set_index(["view", "name"])
    assert (per_case.loc[REFINED]["status"] == per_case.loc["frontal"]["status"]).all()
    summary = pd.read_csv(exp / "eval" / "summary.csv").set_index("view")
    assert summary.loc[REFINED, "threshold"] == summary.loc["frontal", "threshold"]


def test_refined_runs_both_nets_with_the_frontal_threshold(tmp_path):
    assert nets_of(REFINED) == ["frontal", "sagittal"] and nets_of("sagittal") == ["sagittal"]
    write_decision(tmp_path / "eval", {"frontal": {"threshold": 0.11}, "sagittal": {"threshold": 0.4}},
                   "frontal", "profile", {})
    assert evaluated_threshold(tmp_path, REFINED) == 0.11
