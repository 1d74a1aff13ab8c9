"""A small U²-Net (Qin et al. 2020, "U²-Net: going deeper with nested U-structure for salient
object detection"): a UNet whose every stage is itself a small UNet, a residual U-block (RSU).

Shapes as ``UNet``: ``[N, C, H, W]`` -> logits ``[N, out_channels, H, W]``, stride ``2**depth``.
The paper's U²-Net has 6 stages (depth 5, RSU-7 at full size) and its small U²-Net† 16 middle
and 64 stage channels; here the stages follow ``depth`` the same way (stage ``i`` is RSU-(depth
- i + 2), the last two the dilated RSU-4F) and the channels ``base_channels`` (middle) and
``4 * base_channels`` (stage), as U²-Net†.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from l3loc.models.unet import (check_args, check_input_size, conv_bn_relu, prior_head, upsample)


def _conv(in_channels, out_channels, dilation=1):
    return nn.Sequential(*conv_bn_relu(in_channels, out_channels, dilation=dilation))


class RSU(nn.Layer):
    """Residual U-block RSU-L: an input conv to ``out_channels``, a UNet of ``height - 1``
    levels on ``mid_channels`` (``height - 2`` max-pools, a dilated conv at the bottom), and the
    input conv's output added back. ``dilated`` (RSU-4F): no pooling, dilations 1, 2, 4, ...
    instead, for stages already small."""

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int,
                 dilated: bool = False):
        super().__init__()
        self.dilated = dilated
        dilations = [2 ** k if dilated else 1 for k in range(height)]
        self.inp = _conv(in_channels, out_channels)
        self.enc = nn.LayerList([_conv(out_channels if k == 0 else mid_channels, mid_channels,
                                       dilations[k]) for k in range(height - 1)])
        self.bottom = _conv(mid_channels, mid_channels, dilations[-1] if dilated else 2)
        self.dec = nn.LayerList([_conv(2 * mid_channels, out_channels if k == 0 else mid_channels,
                                       dilations[k]) for k in range(height - 1)])

    def forward(self, x):
        residual = h = self.inp(x)
        skips = []
        for k, conv in enumerate(self.enc):
            if k > 0 and not self.dilated:
                h = F.max_pool2d(h, 2)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for k in reversed(range(len(self.dec))):
            h = self.dec[k](paddle.concat([h, skips[k]], axis=1))
            if k > 0 and not self.dilated:
                h = upsample(h)
        return h + residual


def _stage(depth: int, level: int, in_channels: int, mid: int, out: int) -> RSU:
    """Stage ``level``'s RSU: pools down to the net's stride, RSU-4F once that is < 2 pools."""
    pools = depth - level
    return RSU(pools + 2, in_channels, mid, out) if pools >= 2 else RSU(4, in_channels, mid, out,
                                                                         dilated=True)


class U2Net(nn.Layer):
    """U²-Net: ``depth + 1`` RSU encoder stages (2× max-pool between), ``depth`` RSU decoder
    stages (bilinear 2× up-sampling, concatenated with the encoder stage), a 3×3 side head on
    every decoder stage and the bottom stage, up-sampled to full size and fused by a per-level
    1×1 convolution (initialised to their mean, so the initial output is ``prior_prob``).

    Args:
        in_channels, depth, out_channels, prior_prob: as ``UNet``.
        base_channels: middle channels of the RSU blocks; stages have ``4 * base_channels``.
        deep_supervision: in training mode return ``[fused, side_0, ..., side_depth]`` (the
            paper's loss sums all seven); eval mode returns the fused logits.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 8, depth: int = 4,
                 deep_supervision: bool = True, out_channels: int = 1, prior_prob: float = 0.01):
        super().__init__()
        check_args("U2Net", prior_prob, in_channels=in_channels, base_channels=base_channels,
                   depth=depth, out_channels=out_channels)
        self.depth, self.deep_supervision = int(depth), bool(deep_supervision)
        self.stride = 2 ** self.depth
        mid, width = base_channels, 4 * base_channels
        self.enc = nn.LayerList([_stage(self.depth, i, in_channels if i == 0 else width, mid, width)
                                 for i in range(self.depth + 1)])
        self.dec = nn.LayerList([_stage(self.depth, i, 2 * width, mid, width)
                                 for i in range(self.depth)])
        self.sides = nn.LayerList([prior_head(width, out_channels, prior_prob, kernel=3)
                                   for _ in range(self.depth + 1)])
        n = self.depth + 1
        # sides are stacked level by level ([N, out, n, H, W] -> [N, out * n, H, W]), so a
        # grouped 1x1 conv fuses each level's n side maps on their own
        self.fuse = nn.Conv2D(out_channels * n, out_channels, 1, groups=out_channels,
                              weight_attr=paddle.ParamAttr(
                                  initializer=nn.initializer.Constant(1.0 / n)),
                              bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))

    def forward(self, x):
        check_input_size(x, self.stride, "U2Net")
        enc = []
        h = x
        for i, stage in enumerate(self.enc):
            h = stage(F.max_pool2d(h, 2) if i else h)
            enc.append(h)
        dec = {self.depth: h}
        for i in reversed(range(self.depth)):
            dec[i] = self.dec[i](paddle.concat([upsample(dec[i + 1]), enc[i]], axis=1))
        sides = [self.sides[0](dec[0])] + [upsample(self.sides[i](dec[i]), 2 ** i)
                                           for i in range(1, self.depth + 1)]
        fused = self.fuse(paddle.flatten(paddle.stack(sides, axis=2), 1, 2))
        return [fused] + sides if self.deep_supervision and self.training else fused
