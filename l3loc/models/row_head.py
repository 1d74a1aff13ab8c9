"""The paper's cheaper 1-D row head: a 2-D encoder, every level's features pooled over the
columns, and a 1-D decoder along the rows to a row profile.

The L3 answer is a row, and the pipeline reads every map through its row profile (the maximum
over the band's columns, ``l3loc.decode.row_profile``), so a decoder working on whole rows
skips the full-size 2-D decoding that is half a UNet's cost.

Output: the row profile's logits ``[N, out_channels, H, 1]`` broadcast over the input's width,
``[N, out_channels, H, W]``, so the rest of the pipeline (band loss, row profile, decoding,
export, predictor) runs unchanged. The map is constant along each row, so ``predicts_rows``
tells the engine to draw the band target over every column (``l3loc.models.target_col_range``):
the target is then the band's row profile broadcast over the width, and the per-pixel loss
(a mean over pixels) equals the 1-D loss on the row profile.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from l3loc.models.unet import (UPSAMPLE_MODES, Up, check_args, check_input_size, encode,
                               encoder_layers, prior_head)

POOLS = ("max", "mean")


class RowHead(nn.Layer):
    """2-D UNet encoder -> per-level column pooling (max or mean) -> 1-D UNet decoder
    (up-sampling the rows only, 3×1 convolutions, pooled skips) -> row-profile logits.

    Args:
        in_channels, base_channels, depth, upsample, out_channels, prior_prob: as ``UNet``
            (``upsample`` acts on rows only).
        pool: ``"max"`` (the paper's: a vertebra anywhere across the row counts) or ``"mean"``.
    """

    predicts_rows = True

    def __init__(self, in_channels: int = 1, base_channels: int = 8, depth: int = 4,
                 pool: str = "max", upsample: str = "transpose", out_channels: int = 1,
                 prior_prob: float = 0.01):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"RowHead pool must be one of {POOLS}, got {pool!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"RowHead upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        check_args("RowHead", prior_prob, in_channels=in_channels, base_channels=base_channels,
                   depth=depth, out_channels=out_channels)
        self.depth, self.pool = int(depth), pool
        self.stride = 2 ** self.depth
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        self.stem, self.downs = encoder_layers(in_channels, widths)
        self.ups = nn.LayerList([Up(widths[i + 1], widths[i], upsample, scale=(2, 1))
                                 for i in reversed(range(self.depth))])
        self.head = prior_head(widths[0], out_channels, prior_prob)

    def forward(self, x):
        check_input_size(x, self.stride, "RowHead")
        skips = [f.max(axis=3, keepdim=True) if self.pool == "max" else f.mean(axis=3, keepdim=True)
                 for f in encode(self.stem, self.downs, x)]  # [N, C_i, H_i, 1]
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        # broadcast [N, out, H, 1] over the width: a shape-free add that export keeps dynamic
        return self.head(y) + paddle.zeros_like(x[:, :1])
