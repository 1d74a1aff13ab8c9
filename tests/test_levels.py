"""Every level: definitions, and the anatomy-constrained decoder on hand-made level maps."""
import math
import re

import numpy as np
import pytest

from l3loc.decode import Decision, decode_profile, row_profile
from l3loc.labels import level_targets
from l3loc.levels import (LEVELS, check_levels, decide_l3, decode_levels, level_decision,
                          nominal_distance_mm)
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS

SPACING = 1.0


def _profiles(rows, height=700, spacing=SPACING):
    """Row profiles of a perfect level map: the training targets themselves."""
    maps = level_targets(height, 40, np.asarray(rows, dtype=np.float64), 2.0, spacing)
    return np.stack([row_profile(m, (0.35, 0.65)) for m in maps])


def _plan_rows(n_lumbar, fov="head_to_thigh"):
    plan = next(p for p in (plan_case(0, i, PRESETS["default"]) for i in range(400))
                if p.n_lumbar == n_lumbar and p.fov_type == fov)
    gt = plan.ground_truth()
    z_l3 = gt["levels_z_mm"]["L3"]
    # rows in mm below a top 300 mm above L3 (1 mm processed rows)
    return plan, np.array([300.0 + z_l3 - gt["levels_z_mm"][k] if k in gt["levels_z_mm"] else np.nan
                           for k in LEVELS])


def test_check_levels():
    assert check_levels(["t12", "L3"]) == ("T12", "L3")
    for bad, msg in ((["L3", "L1"], "in order"), (["L1"], "include L3"), (["L7", "L3"], "unknown")):
        with pytest.raises(ValueError, match=msg):
            check_levels(bad)
    assert nominal_distance_mm("L1", "L3") == 35.5 + 37.0


def test_a_perfect_level_map_decodes_every_level_within_half_a_mm():
    _, rows = _plan_rows(5)
    seq = decode_levels(_profiles(rows), LEVELS, SPACING)
    np.testing.assert_allclose(seq.rows, rows, atol=0.5)
    assert seq.anomalies == ()
    # a level's confidence reads like the single-L3 decoder's (same smoothing), so one threshold
    # serves both
    prof = _profiles(rows)
    assert seq.confidence[3] == pytest.approx(decode_profile(prof[3], "profile", SPACING).confidence)
    assert seq.sequence_confidence == pytest.approx(seq.confidence.min()) and seq.sequence_confidence > 0.7
    assert decide_l3(seq, rows[3], SPACING, 0.5) == ("found", seq.row("L3"), "")


def test_chest_ct_without_l3_still_yields_t12_and_l1():
    _, rows = _plan_rows(5)
    cut = rows.copy()
    cut[2:] = np.nan                                  # the scan ends between L1 and L2
    seq = decode_levels(_profiles(cut, height=int(rows[1]) + 20), LEVELS, SPACING)
    assert seq.found().keys() == {"T12", "L1"} and seq.anomalies == ()
    np.testing.assert_allclose(seq.rows[:2], rows[:2], atol=0.5)
    assert decide_l3(seq, math.nan, SPACING, 0.5)[0] == "not_found"


def test_four_lumbar_phantom_is_flagged_transitional():
    plan, rows = _plan_rows(4)
    assert plan.ground_truth()["transitional"] and math.isnan(rows[5])
    seq = decode_levels(_profiles(rows), LEVELS, SPACING)
    assert any("L5 not found between L4 and S1" in a for a in seq.anomalies)
    status, row, reason = decide_l3(seq, rows[3], SPACING, 0.5)
    assert status == "ambiguous" and "4 lumbar" in reason and abs(row - rows[3]) < 0.5


def test_six_lumbar_phantom_is_flagged_transitional():
    _, rows = _plan_rows(6)
    seq = decode_levels(_profiles(rows), LEVELS, SPACING)
    assert any("6 lumbar" in a for a in seq.anomalies), seq
    np.testing.assert_allclose(seq.rows, rows, atol=0.5)


def test_swapped_or_impossibly_spaced_levels_are_flagged():
    _, rows = _plan_rows(5)
    swapped = rows.copy()
    swapped[[2, 3]] = rows[[3, 2]]
    seq = decode_levels(_profiles(swapped), LEVELS, SPACING)
    # out of order: no consistent sequence holds both, so L3 is either an anomaly or skipped
    # as missed (its neighbours a normal span apart)
    assert seq.anomalies or "L3" in seq.missed, seq
    assert decide_l3(seq, swapped[3], SPACING, 0.5)[0] != "found"
    # the L3 channel confidently peaks where no consistent sequence has L3: ambiguous, not
    # not_found (the two disagree), at the channel's row
    status, row, reason = decide_l3(seq, swapped[3], SPACING, 0.5, l3_channel_confidence=0.8)
    assert (status, row) == ("ambiguous", swapped[3]) and "fits no consistent sequence" in reason
    # L3 60 mm below L2 and L4 right under it: no spine is built like that
    spaced = rows.copy()
    spaced[3] = rows[2] + 60.0
    seq = decode_levels(_profiles(spaced), LEVELS, SPACING)
    assert seq.anomalies or "L3" in seq.missed, seq
    assert decide_l3(seq, spaced[3], SPACING, 0.5)[0] != "found"


def test_l3_channel_disagreeing_with_the_sequence_is_ambiguous():
    _, rows = _plan_rows(5)
    seq = decode_levels(_profiles(rows), LEVELS, SPACING)
    status, _, reason = decide_l3(seq, rows[4], SPACING, 0.5)   # the L3 channel says L4
    assert status == "ambiguous" and "L3 channel peaks" in reason


def _right_and_one_vertebra_high():
    """Level rows, their perfect profiles, the profiles of every level one vertebra higher (L3
    on the real L2), and an L3 channel decision at the right L3."""
    _, rows = _plan_rows(5)
    return (rows, _profiles(rows), _profiles(rows - (rows[3] - rows[2])),
            Decision("found", rows[3], 0.9, math.nan, 0.0))


def test_a_view_claiming_l3_on_another_vertebra_makes_the_decision_ambiguous():
    """The sagittal view's own sequence one level high (its L3 on the real L2), the frontal
    view's right. When the views' mean leans to the sagittal one, the frontal view's own claim
    contradicts it: ambiguous. A view below the threshold claims nothing; views that agree
    stay found."""
    rows, frontal, sagittal, channel = _right_and_one_vertebra_high()
    agree = level_decision(frontal, LEVELS, channel, SPACING, 2.0, 0.3,
                           view_profiles={"frontal": frontal, "sagittal": frontal})
    assert agree.status == "found" and agree.reason == ""
    assert [r for _, r, _ in agree.views] == pytest.approx([agree.row, agree.row])
    leaning = 0.4 * frontal + 0.6 * sagittal              # the mean says L2
    on_l2 = Decision("found", rows[2], 0.9, math.nan, 0.0)
    d = level_decision(leaning, LEVELS, on_l2, SPACING, 2.0, 0.3,
                       view_profiles={"frontal": frontal, "sagittal": sagittal})
    assert abs(d.row - rows[2]) < 1
    assert d.status == "ambiguous"
    assert re.search(r"the frontal view on its own puts L3 3\d mm lower", d.reason), d.reason
    # without the views' own profiles (one view, or an older caller) the mean alone decides
    assert level_decision(leaning, LEVELS, on_l2, SPACING, 2.0, 0.3).status == "found"
    # a view whose own L3 lies under the threshold claims nothing and has no say
    seq = decode_levels(frontal, LEVELS, SPACING)

    def status(frontal_claim, sagittal_claim):
        views = (("frontal", *frontal_claim), ("sagittal", *sagittal_claim))
        return decide_l3(seq, rows[3], SPACING, 0.5, views=views)[0]

    assert status((rows[3], 0.9), (rows[2], 0.4)) == "found"         # under 0.5: no claim
    assert status((rows[3], 0.9), (rows[2], 0.6)) == "ambiguous"
    assert status((rows[3], 0.9), (rows[3] + 10, 0.9)) == "found"    # the same vertebra
    assert status((math.nan, 0.0), (rows[3], 0.9)) == "found"


def test_a_fold_claiming_l3_on_another_vertebra_makes_the_ensemble_ambiguous():
    """The mean of two folds' maps decodes L3 where the surer fold puts it; the other fold's own
    sequence, at or above the threshold, claims the vertebra above: ambiguous, naming the fold.
    A fold under the threshold, or folds that agree, leave the ensemble found."""
    rows, right, high, channel = _right_and_one_vertebra_high()
    agree = level_decision(right, LEVELS, channel, SPACING, 2.0, 0.3,
                           fold_profiles={"fold 1": right, "fold 2": right})
    assert agree.status == "found" and agree.reason == ""
    assert [name for name, _, _ in agree.folds] == ["fold 1", "fold 2"]
    d = level_decision(0.6 * right + 0.4 * high, LEVELS, channel, SPACING, 2.0, 0.3,
                       fold_profiles={"fold 1": right, "fold 2": high})
    assert abs(d.row - rows[3]) < 1
    assert d.status == "ambiguous"
    assert re.search(r"fold 2 on its own puts L3 3\d mm higher", d.reason), d.reason
    assert abs(d.second_row - rows[2]) < 1 and d.second_confidence > 0.5   # the fold's L3
    weak = level_decision(right, LEVELS, channel, SPACING, 2.0, 0.3,
                          fold_profiles={"fold 1": right, "fold 2": 0.2 * high})
    assert weak.status == "found"
    # the recorded claims decide again under another threshold as they did
    assert decide_l3(d.sequence, rows[3], SPACING, 0.3, folds=d.folds)[0] == "ambiguous"
    assert decide_l3(d.sequence, rows[3], SPACING, 0.3)[0] == "found"


def test_a_sequence_survives_a_weak_spurious_peak():
    _, rows = _plan_rows(5)
    prof = _profiles(rows)
    prof[3] = np.maximum(prof[3], 0.3 * _profiles(rows[[4]])[0])   # L3 channel echoes at L4
    seq = decode_levels(prof, LEVELS, SPACING)
    np.testing.assert_allclose(seq.rows, rows, atol=0.5)
    assert seq.anomalies == ()


def test_a_silent_channel_between_found_levels_is_missed_not_transitional():
    # five lumbar vertebrae, the L5 channel silent (common under domain shift): L4 and S1 lie a
    # whole L4-L5-S1 span apart, so L5 is there and was missed; the spine stays normal
    _, rows = _plan_rows(5)
    prof = _profiles(rows)
    prof[LEVELS.index("L5")] = 0.0
    seq = decode_levels(prof, LEVELS, SPACING)
    assert seq.anomalies == () and seq.missed == ("L5",), seq
    assert decide_l3(seq, rows[3], SPACING, 0.5)[0] == "found"
    # four lumbar vertebrae (L4 on the sacrum) stay transitional: the gap is a vertebra short
    _, rows4 = _plan_rows(4)
    seq4 = decode_levels(_profiles(rows4), LEVELS, SPACING)
    assert seq4.missed == () and any("4 lumbar" in a for a in seq4.anomalies), seq4


def test_l3_at_the_scans_end_is_ambiguous_in_the_sequence_too():
    _, rows = _plan_rows(5)
    height = int(rows[3]) + 8                          # the scan stops 8 mm under L3's centre
    cut = np.where(np.arange(len(LEVELS)) <= 3, rows, np.nan)
    seq = decode_levels(_profiles(cut, height=height), LEVELS, SPACING)
    status, row, reason = decide_l3(seq, rows[3], SPACING, 0.5, n_rows=height)
    assert status == "ambiguous" and row == pytest.approx(rows[3], abs=1.0)
    assert "scan's lower end" in reason
    assert decide_l3(seq, rows[3], SPACING, 0.5)[0] == "found"    # length unknown: no check
    d = level_decision(_profiles(cut, height=height), LEVELS, Decision("found", rows[3], 0.9,
                       math.nan, 0.0), SPACING, 2.0, 0.5)
    assert (d.status, d.scan_end) == ("ambiguous", "lower")
