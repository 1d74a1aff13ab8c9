"""Losses against hand-computed values on 2x2 images; registry errors."""
import math

import l3loc  # noqa: F401  (sets the MKL/OpenMP variables before paddle loads)
import paddle
import pytest

from l3loc.losses import LOSSES, BCEWithLogits, Dice, WeightedBCE, build_loss

LN2 = math.log(2.0)


def t(values):
    """[[a, b], [c, d]] -> float32 tensor [1, 1, 2, 2]."""
    return paddle.to_tensor([[values]], dtype="float32")


LOGITS = t([[0.0, 2.0], [-1.0, 0.0]])
TARGETS = t([[1.0, 0.0], [0.0, 0.0]])
# per pixel: t=1, x=0: log 2; t=0: log(1 + e^x) -> log(1 + e^2), log(1 + e^-1), log 2
BG_TERMS = math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0)) + LN2


def test_bce_with_logits_hand_value():
    loss = BCEWithLogits()(LOGITS, TARGETS)
    assert loss.shape == [] and float(loss) == pytest.approx((LN2 + BG_TERMS) / 4, rel=1e-6)


def test_weighted_bce_weights_only_positive_term():
    loss = WeightedBCE(pos_weight=3.0)(LOGITS, TARGETS)
    assert loss.shape == [] and float(loss) == pytest.approx((3 * LN2 + BG_TERMS) / 4, rel=1e-6)


def test_weighted_bce_with_weight_one_is_bce():
    assert float(WeightedBCE(1.0)(LOGITS, TARGETS)) == pytest.approx(
        float(BCEWithLogits()(LOGITS, TARGETS)), rel=1e-6)


def test_dice_hand_values_and_empty_target():
    half = paddle.zeros([2, 1, 2, 2])  # p = 0.5 everywhere
    targets = paddle.concat([TARGETS, paddle.zeros([1, 1, 2, 2])])
    # image 1: 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5; image 2 (empty): 1 - 1 / (2 + 0 + 1) = 2/3
    loss = Dice()(half, targets)
    assert loss.shape == [] and float(loss) == pytest.approx((0.5 + 2 / 3) / 2, rel=1e-6)
    # an empty target predicted empty costs nothing; predicted full it costs almost 1
    assert float(Dice()(paddle.full([1, 1, 2, 2], -30.0), paddle.zeros([1, 1, 2, 2]))) < 1e-6
    assert float(Dice()(paddle.full([1, 1, 2, 2], 30.0), paddle.zeros([1, 1, 2, 2]))) == \
        pytest.approx(4 / 5, rel=1e-6)


def test_soft_targets_accepted():
    loss = BCEWithLogits()(paddle.zeros([1, 1, 1, 1]), paddle.full([1, 1, 1, 1], 0.25))
    # t = 0.25, x = 0: -(0.25 log 0.5 + 0.75 log 0.5) = log 2
    assert float(loss) == pytest.approx(LN2, rel=1e-6)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="same shape"):
        BCEWithLogits()(paddle.zeros([1, 1, 2, 2]), paddle.zeros([1, 1, 2, 3]))


def test_gradient_flows():
    x = paddle.zeros([1, 1, 2, 2])
    x.stop_gradient = False
    Dice()(x, TARGETS).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_registry_names_and_errors():
    assert LOSSES.names == ["BCEWithLogits", "Dice", "WeightedBCE"]
    assert isinstance(build_loss({"type": "WeightedBCE", "pos_weight": 5}), WeightedBCE)
    with pytest.raises(ValueError, match=r"unknown losses type 'Focal'.*BCEWithLogits, Dice"):
        build_loss({"type": "Focal"})
    with pytest.raises(ValueError, match="'pos_wieght'"):
        build_loss({"type": "WeightedBCE", "pos_wieght": 5})
    with pytest.raises(ValueError, match="pos_weight must be > 0"):
        build_loss({"type": "WeightedBCE", "pos_weight": 0})
