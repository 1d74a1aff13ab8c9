"""Losses on band targets, registered by name: ``loss: {type: BCEWithLogits}`` in a config.

Every loss takes ``logits`` ``[N, C, H, W]`` (C = 1, or one channel per vertebral level; raw
network output, no sigmoid: the logits-based forms are numerically stable where sigmoid
followed by BCE saturates) and ``targets`` of the same shape in [0, 1] (soft, blurred targets allowed), and returns a 0-d tensor averaged over the
batch.
"""
from __future__ import annotations

from typing import Any, Mapping

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from l3loc.registry import Registry

LOSSES = Registry("losses")


def _check_shapes(logits: paddle.Tensor, targets: paddle.Tensor) -> None:
    if list(logits.shape) != list(targets.shape):
        raise ValueError(f"logits {list(logits.shape)} and targets {list(targets.shape)} "
                         "must have the same shape")


@LOSSES.add
class BCEWithLogits(nn.Layer):
    """Binary cross-entropy on logits, averaged over every pixel of the batch (the default)."""

    def forward(self, logits, targets):
        _check_shapes(logits, targets)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")


@LOSSES.add
class WeightedBCE(nn.Layer):
    """BCE on logits with the positive term weighted by ``pos_weight``, averaged over pixels.

    ``-(pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))``. The band is ~1 % of
    a 512² canvas (5 rows × 154 columns = 0.3 %), so plain BCE is dominated by background
    pixels; a weight of ~10 lets the band count without making the background free.

    Args:
        pos_weight: weight of the positive (band) term, > 0.
    """

    def __init__(self, pos_weight: float = 10.0):
        super().__init__()
        if not pos_weight > 0:
            raise ValueError(f"WeightedBCE pos_weight must be > 0, got {pos_weight!r}")
        self.pos_weight = float(pos_weight)

    def forward(self, logits, targets):
        _check_shapes(logits, targets)
        weight = paddle.full([1], self.pos_weight, dtype=logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="mean",
                                                  pos_weight=weight)


@LOSSES.add
class Dice(nn.Layer):
    """Soft Dice loss on ``p = sigmoid(logits)``, per image, then averaged over the batch.

    ``1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)``. The ``smooth`` term decides
    empty targets (windows without L3): the loss is then ``sum(p) / (sum(p) + smooth)``, 0 when
    the net predicts nothing and close to 1 when it predicts a band, so negatives are learned
    rather than scored as a constant.

    Args:
        smooth: added to numerator and denominator, in pixels (default 1).
    """

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        if not smooth > 0:
            raise ValueError(f"Dice smooth must be > 0, got {smooth!r}")
        self.smooth = float(smooth)

    def forward(self, logits, targets):
        _check_shapes(logits, targets)
        probs = F.sigmoid(logits).flatten(1)
        targets = targets.flatten(1)
        overlap = (probs * targets).sum(axis=1)
        total = probs.sum(axis=1) + targets.sum(axis=1)
        return (1.0 - (2.0 * overlap + self.smooth) / (total + self.smooth)).mean()


def supervised_loss(loss_fn: nn.Layer, outputs, targets):
    """``loss_fn`` of a network's ``outputs``: one logits tensor, or, from a deep-supervised
    network in training mode, a list of logits (its side outputs), each scored against the same
    targets and averaged."""
    if isinstance(outputs, (list, tuple)):
        return paddle.add_n([loss_fn(o, targets) for o in outputs]) / len(outputs)
    return loss_fn(outputs, targets)


def build_loss(cfg: Mapping[str, Any]) -> nn.Layer:
    """Build the loss described by ``cfg`` (``{"type": "WeightedBCE", "pos_weight": 10}``).

    Raises:
        ValueError: unknown ``type`` (lists the known ones) or an argument the loss does not take.
    """
    return LOSSES.build(cfg)
