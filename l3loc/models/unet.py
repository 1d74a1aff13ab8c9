"""UNet (Ronneberger et al. 2015) with padding so the output has the input's size, the attention
UNet (Oktay et al. 2018), and the building blocks the other networks of ``l3loc.models`` share.

Shapes: input ``[N, in_channels, H, W]`` -> logits ``[N, out_channels, H, W]``. The encoder halves
the size ``depth`` times, so H and W must be multiples of ``stride = 2**depth`` (16 for the
default depth 4); the preprocessing canvas (512², 256², ...) always is. Every network here has
a ``stride`` attribute: inference pads an image's rows to a multiple of it.
"""
from __future__ import annotations

import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

UPSAMPLE_MODES = ("transpose", "bilinear")


def check_args(name: str, prior_prob: float, **counts) -> None:
    """ValueError unless every value of ``counts`` is a positive integer and ``prior_prob`` in (0, 1)."""
    for arg, value in counts.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} {arg} must be a positive integer, got {value!r}")
    if not 0.0 < prior_prob < 1.0:
        raise ValueError(f"{name} prior_prob must be in (0, 1), got {prior_prob!r}")


def check_input_size(x, stride: int, name: str) -> None:
    """ValueError if the input's height or width is not a multiple of ``stride``."""
    # Under paddle.jit.to_static unknown sizes are -1: only check sizes that are known.
    for size in x.shape[2:]:
        if isinstance(size, int) and size > 0 and size % stride:
            raise ValueError(f"{name} input height and width must be multiples of "
                             f"{stride} (2**depth), got {list(x.shape[2:])}")


def conv_bn_relu(in_channels: int, out_channels: int, kernel=(3, 3), dilation: int = 1) -> list:
    """Convolution (padded to keep the size, no bias: the BatchNorm has its own shift),
    BatchNorm, ReLU, as a list of layers to put in a Sequential."""
    padding = tuple(dilation * (k // 2) for k in kernel)
    return [nn.Conv2D(in_channels, out_channels, kernel, padding=padding, dilation=dilation,
                      bias_attr=False),
            nn.BatchNorm2D(out_channels), nn.ReLU()]


def prior_head(in_channels: int, out_channels: int, prior_prob: float, kernel: int = 1):
    """The logit convolution whose bias starts at ``logit(prior_prob)``: every pixel's initial
    sigmoid is ``prior_prob``. The band covers under 1 % of a canvas (5 x 154 of 512² px = 0.3 %),
    so starting at 0.01 instead of 0.5 skips a first phase spent only lowering every logit (the
    RetinaNet prior trick)."""
    return nn.Conv2D(in_channels, out_channels, kernel, padding=kernel // 2,
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(
                         math.log(prior_prob / (1.0 - prior_prob)))))


def _bilinear_kernel(factor: int) -> np.ndarray:
    """1-D weights of bilinear up-sampling by ``factor`` as a transposed convolution."""
    if factor == 1:
        return np.ones(1, np.float32)
    return (1.0 - np.abs(np.arange(2 * factor) - (2 * factor - 1) / 2) / factor).astype(np.float32)


def upsample(x, factor=2):
    """Bilinear up-sampling (``align_corners=False``, edges replicated) by ``factor`` (an even
    int, or (rows, cols) factors, each 1 or even), no parameters.

    Written as a fixed depthwise transposed convolution, equal to ``F.interpolate(...,
    mode="bilinear")`` to 1e-7: Paddle 3.3's oneDNN predictor cannot run the interpolation ops
    of an exported graph ("ConvertPirAttribute2RuntimeAttribute not support
    ArrayAttribute<DoubleAttribute>").
    """
    fh, fw = (factor, factor) if isinstance(factor, int) else factor
    kh, kw = _bilinear_kernel(fh), _bilinear_kernel(fw)
    channels = x.shape[1]
    weight = paddle.to_tensor(np.tile(np.outer(kh, kw), (channels, 1, 1, 1)))
    x = F.pad(x, [int(fw > 1)] * 2 + [int(fh > 1)] * 2, mode="replicate")
    return F.conv2d_transpose(x, weight, stride=[fh, fw], padding=[3 * fh // 2 if fh > 1 else 0,
                                                                   3 * fw // 2 if fw > 1 else 0],
                              groups=channels)


class DoubleConv(nn.Layer):
    """(Conv -> BatchNorm -> ReLU) ×2; keeps H and W. ``kernel`` (3, 1) convolves along rows
    only (the 1-D decoder of ``RowHead``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(3, 3)):
        super().__init__()
        self.block = nn.Sequential(*conv_bn_relu(in_channels, out_channels, kernel),
                                   *conv_bn_relu(out_channels, out_channels, kernel))

    def forward(self, x):
        return self.block(x)


def encoder_layers(in_channels: int, widths: list[int]):
    """The UNet encoder: a full-size DoubleConv, then one (2× max-pool, DoubleConv) per level."""
    return (DoubleConv(in_channels, widths[0]),
            nn.LayerList([DoubleConv(widths[i], widths[i + 1]) for i in range(len(widths) - 1)]))


def encode(stem, downs, x) -> list:
    """Encoder features of every level, full size first (``encoder_layers``)."""
    features = [stem(x)]
    for down in downs:
        features.append(down(F.max_pool2d(features[-1], 2)))
    return features


class AttentionGate(nn.Layer):
    """Additive attention gate (Oktay et al. 2018): weights each skip pixel by
    ``sigmoid(psi(relu(Wx skip + Wg g)))``, where ``g`` is the decoder's up-sampled feature of the
    same size, so a skip passes on what the coarser context deems relevant (the spine near L3,
    not the bright pelvis or ribs elsewhere)."""

    def __init__(self, channels: int, inter_channels: int):
        super().__init__()
        self.wx = nn.Sequential(nn.Conv2D(channels, inter_channels, 1, bias_attr=False),
                                nn.BatchNorm2D(inter_channels))
        self.wg = nn.Sequential(nn.Conv2D(channels, inter_channels, 1, bias_attr=False),
                                nn.BatchNorm2D(inter_channels))
        self.psi = nn.Sequential(nn.ReLU(), nn.Conv2D(inter_channels, 1, 1), nn.Sigmoid())

    def forward(self, skip, g):
        return skip * self.psi(self.wx(skip) + self.wg(g))


class Up(nn.Layer):
    """Up-sample by ``scale``, halve the channels, concatenate the skip, DoubleConv.

    ``transpose``: a learned stride-``scale`` transposed convolution (the reference's choice).
    ``bilinear``: fixed bilinear interpolation then a 1×1 convolution to halve the channels;
    fewer parameters and no checkerboard artefacts. ``scale`` (2, 1) up-samples rows only and
    convolves along rows only (the 1-D decoder of ``RowHead``). ``gate``: an ``AttentionGate``
    on the skip (the attention UNet).
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str, scale=(2, 2),
                 gate: bool = False):
        super().__init__()
        self.mode, self.scale = mode, list(scale)
        if mode == "transpose":
            self.up = nn.Conv2DTranspose(in_channels, out_channels, self.scale, stride=self.scale)
        else:
            self.up = nn.Conv2D(in_channels, out_channels, 1)
        self.gate = AttentionGate(out_channels, max(1, out_channels // 2)) if gate else None
        self.conv = DoubleConv(2 * out_channels, out_channels,
                               tuple(3 if s > 1 else 1 for s in self.scale))

    def forward(self, x, skip):
        if self.mode == "bilinear":
            x = upsample(x, self.scale)
        x = self.up(x)
        if self.gate is not None:
            skip = self.gate(skip, x)
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
        prior_prob: initial sigmoid output everywhere (see ``prior_head``).
    """

    gated = False  # attention gates on the skips (AttentionUNet)

    def __init__(self, in_channels: int = 1, base_channels: int = 16, depth: int = 4,
                 upsample: str = "transpose", out_channels: int = 1, prior_prob: float = 0.01):
        super().__init__()
        name = type(self).__name__
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"{name} upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        check_args(name, prior_prob, in_channels=in_channels, base_channels=base_channels,
                   depth=depth, out_channels=out_channels)
        self.depth = int(depth)
        self.stride = 2 ** self.depth
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        self.stem, self.downs = encoder_layers(in_channels, widths)
        self.ups = nn.LayerList([Up(widths[i + 1], widths[i], upsample, gate=self.gated)
                                 for i in reversed(range(self.depth))])
        self.head = prior_head(widths[0], out_channels, prior_prob)

    def forward(self, x):
        """``x``: ``[N, C, H, W]`` float32 -> logits ``[N, out_channels, H, W]``."""
        check_input_size(x, self.stride, type(self).__name__)
        skips = encode(self.stem, self.downs, x)
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)


class AttentionUNet(UNet):
    """The UNet with an additive attention gate on every skip (Oktay et al. 2018, "Attention
    U-Net: learning where to look for the pancreas"): the decoder's up-sampled feature gates the
    encoder's skip before the concatenation. Same arguments and stride as ``UNet``; the gates add
    about 1 % of parameters and run at every level's full size."""

    gated = True
