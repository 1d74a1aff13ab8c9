"""UNet (Ronneberger et al. 2015) with padding so the output has the input's size.

Shapes: input ``[N, in_channels, H, W]`` -> logits ``[N, out_channels, H, W]``. The encoder halves
the size ``depth`` times, so H and W must be multiples of ``stride = 2**depth`` (16 for the
default depth 4); the preprocessing canvas (512², 256², ...) always is.
"""
from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

UPSAMPLE_MODES = ("transpose", "bilinear")


class DoubleConv(nn.Layer):
    """(3×3 Conv -> BatchNorm -> ReLU) ×2; keeps H and W.

    The convolutions carry no bias: the BatchNorm that follows has its own shift.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels),
            nn.ReLU(),
            nn.Conv2D(out_channels, out_channels, 3, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        return self.block(x)


class Up(nn.Layer):
    """Double the size, halve the channels, concatenate the skip, DoubleConv.

    ``transpose``: a learned 2×2 stride-2 transposed convolution (the reference's choice).
    ``bilinear``: fixed bilinear interpolation then a 1×1 convolution to halve the channels;
    fewer parameters and no checkerboard artefacts.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up = nn.Conv2DTranspose(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Conv2D(in_channels, out_channels, 1)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x, skip):
        if self.mode == "bilinear":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.up(x)
        return self.conv(paddle.concat([x, skip], axis=1))


class UNet(nn.Layer):
    """UNet producing per-pixel logits of "this pixel is on the L3 band".

    Level ``i`` (0 = full size) has ``base_channels * 2**i`` channels; the bottleneck is level
    ``depth``. ``UNet(in_channels=1, base_channels=64, depth=4)`` is the reference network
    (31 M parameters, minus its unused 1×512 head); base 16 has 1/16 of the parameters.

    Args:
        in_channels: input channels (1 for one view, 2 for frontal + sagittal stacked).
        base_channels: channels at full resolution.
        depth: number of 2× down-samplings; input H and W must be multiples of ``2**depth``.
        upsample: ``"transpose"`` or ``"bilinear"`` (see ``Up``).
        out_channels: output logit channels.
        prior_prob: initial sigmoid output everywhere (the head's bias is its logit). The band
            covers under 1 % of a canvas (5 x 154 of 512² px = 0.3 %), so starting at 0.01
            instead of 0.5 skips a first phase spent only lowering every logit (the RetinaNet
            prior trick).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 16, depth: int = 4,
                 upsample: str = "transpose", out_channels: int = 1, prior_prob: float = 0.01):
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"UNet upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        for arg, value in (("in_channels", in_channels), ("base_channels", base_channels),
                           ("depth", depth), ("out_channels", out_channels)):
            if int(value) != value or value < 1:
                raise ValueError(f"UNet {arg} must be a positive integer, got {value!r}")
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"UNet prior_prob must be in (0, 1), got {prior_prob!r}")
        self.depth = int(depth)
        self.stride = 2 ** self.depth
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0])
        self.downs = nn.LayerList([DoubleConv(widths[i], widths[i + 1])
                                   for i in range(self.depth)])
        self.ups = nn.LayerList([Up(widths[i + 1], widths[i], upsample)
                                 for i in reversed(range(self.depth))])
        self.head = nn.Conv2D(
            widths[0], out_channels, 1,
            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(
                math.log(prior_prob / (1.0 - prior_prob)))))

    def forward(self, x):
        """``x``: ``[N, C, H, W]`` float32 -> logits ``[N, out_channels, H, W]``."""
        # Under paddle.jit.to_static unknown sizes are -1: only check sizes that are known.
        for size in x.shape[2:]:
            if isinstance(size, int) and size > 0 and size % self.stride:
                raise ValueError(f"UNet input height and width must be multiples of "
                                 f"{self.stride} (2**depth), got {list(x.shape[2:])}")
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)
