"""UNet++ (Zhou et al. 2018, "UNet++: a nested U-Net architecture") and UNet 3+ (Huang et al.
2020, "UNet 3+: a full-scale connected UNet"), on the UNet's encoder (``l3loc.models.unet``).

Both keep the UNet's shapes (``[N, C, H, W]`` -> logits ``[N, out_channels, H, W]``) and stride
``2**depth``. With ``deep_supervision`` the net has one head per decoder path; in training
mode it returns the list of their logits, each scored against the same target
(``l3loc.losses.supervised_loss``), and in eval mode one map (see each class).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from l3loc.models.unet import (DoubleConv, check_args, check_input_size, conv_bn_relu, encode,
                               encoder_layers, prior_head, upsample)


class UNetPlusPlus(nn.Layer):
    """UNet++: nested, dense skip paths. Node ``X[i][j]`` (level ``i``, ``j`` convolutions along
    the skip) is a DoubleConv of the concatenation of every ``X[i][0..j-1]`` and the bilinearly
    up-sampled ``X[i+1][j-1]``; ``X[i][0]`` is the encoder. The full-size nodes ``X[0][1..depth]``
    are the outputs of UNets of depth 1..depth sharing one encoder.

    Args:
        in_channels, base_channels, depth, out_channels, prior_prob: as ``UNet``.
        deep_supervision: one head per full-size node ``X[0][j]``; eval mode returns their mean
            logits (the paper's "accurate mode"). Without it, one head on ``X[0][depth]``.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 8, depth: int = 4,
                 deep_supervision: bool = False, out_channels: int = 1, prior_prob: float = 0.01):
        super().__init__()
        check_args("UNetPlusPlus", prior_prob, in_channels=in_channels,
                   base_channels=base_channels, depth=depth, out_channels=out_channels)
        self.depth, self.deep_supervision = int(depth), bool(deep_supervision)
        self.stride = 2 ** self.depth
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        self.stem, self.downs = encoder_layers(in_channels, widths)
        # nodes[i][j - 1] is X[i][j]
        self.nodes = nn.LayerList([
            nn.LayerList([DoubleConv(j * widths[i] + widths[i + 1], widths[i])
                          for j in range(1, self.depth - i + 1)])
            for i in range(self.depth)])
        self.heads = nn.LayerList([prior_head(widths[0], out_channels, prior_prob)
                                   for _ in range(self.depth if self.deep_supervision else 1)])

    def forward(self, x):
        check_input_size(x, self.stride, "UNetPlusPlus")
        grid = [[f] for f in encode(self.stem, self.downs, x)]  # grid[i][j] = X[i][j]
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                grid[i].append(self.nodes[i][j - 1](
                    paddle.concat(grid[i] + [upsample(grid[i + 1][j - 1])], axis=1)))
        if not self.deep_supervision:
            return self.heads[0](grid[0][-1])
        outs = [head(node) for head, node in zip(self.heads, grid[0][1:])]
        return outs if self.training else paddle.add_n(outs) / len(outs)


class UNet3Plus(nn.Layer):
    """UNet 3+: full-scale skips. Decoder level ``i`` gathers every level: finer encoder levels
    max-pooled down, the same-level encoder, coarser decoder levels (and the bottleneck)
    bilinearly up-sampled; each through a 3×3 conv to ``base_channels``, concatenated
    (``(depth + 1) * base_channels``) and fused by one 3×3 conv. Fewer parameters than UNet: the
    decoder is narrow at every level.

    Args:
        in_channels, base_channels, depth, out_channels, prior_prob: as ``UNet``.
        deep_supervision: one head per decoder level and the bottleneck, bilinearly up-sampled
            to full size (the paper's); eval mode returns the full-size head's logits only.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 8, depth: int = 4,
                 deep_supervision: bool = False, out_channels: int = 1, prior_prob: float = 0.01):
        super().__init__()
        check_args("UNet3Plus", prior_prob, in_channels=in_channels,
                   base_channels=base_channels, depth=depth, out_channels=out_channels)
        self.depth, self.deep_supervision = int(depth), bool(deep_supervision)
        self.stride = 2 ** self.depth
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        fused = base_channels * (self.depth + 1)
        self.stem, self.downs = encoder_layers(in_channels, widths)

        def source_channels(i, k):  # encoder levels up to i and the bottleneck; decoder above i
            return widths[k] if k <= i or k == self.depth else fused

        # gather[i][k]: level k's contribution to decoder level i
        self.gather = nn.LayerList([
            nn.LayerList([nn.Sequential(*conv_bn_relu(source_channels(i, k), base_channels))
                          for k in range(self.depth + 1)])
            for i in range(self.depth)])
        self.fuse = nn.LayerList([nn.Sequential(*conv_bn_relu(fused, fused))
                                  for _ in range(self.depth)])
        side_channels = [fused] * self.depth + [widths[-1]]
        self.heads = nn.LayerList([prior_head(side_channels[i], out_channels, prior_prob, kernel=3)
                                   for i in range(self.depth + 1 if self.deep_supervision else 1)])

    def forward(self, x):
        check_input_size(x, self.stride, "UNet3Plus")
        enc = encode(self.stem, self.downs, x)
        dec = {self.depth: enc[self.depth]}
        for i in reversed(range(self.depth)):
            parts = []
            for k in range(self.depth + 1):
                if k < i:
                    src = F.max_pool2d(enc[k], 2 ** (i - k))
                elif k == i:
                    src = enc[i]
                else:
                    src = upsample(dec[k], 2 ** (k - i))
                parts.append(self.gather[i][k](src))
            dec[i] = self.fuse[i](paddle.concat(parts, axis=1))
        if not (self.deep_supervision and self.training):
            return self.heads[0](dec[0])
        return [self.heads[0](dec[0])] + [upsample(self.heads[i](dec[i]), 2 ** i)
                                          for i in range(1, self.depth + 1)]
