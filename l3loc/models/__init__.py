"""Networks, registered by name so a config chooses one with ``model: {type: UNet, ...}``.

Add a network by writing its module here and one ``MODELS.add(...)`` line below: this list is
the single source of the names that configs and command-line choices accept.
"""
from __future__ import annotations

from typing import Any, Mapping

from l3loc.models.row_head import RowHead
from l3loc.models.u2net import U2Net
from l3loc.models.unet import AttentionUNet, UNet
from l3loc.models.unet_plus import UNet3Plus, UNetPlusPlus
from l3loc.registry import Registry

MODELS = Registry("models")
for _net in (UNet, AttentionUNet, UNetPlusPlus, UNet3Plus, U2Net, RowHead):
    MODELS.add(_net)


def build_model(cfg: Mapping[str, Any]):
    """Build the network described by ``cfg`` (``{"type": "UNet", "base_channels": 16, ...}``).

    Raises:
        ValueError: unknown ``type`` (lists the known ones) or an argument the network does not take.
    """
    return MODELS.build(cfg)


def build_net(cfg: Mapping[str, Any]):
    """The network of a resolved experiment config (its ``model`` section, one input channel,
    one output channel per level of ``label.levels``).

    Built under fresh unique names (conv2d_0, ...): checkpoints and optimizer states are keyed by
    them, so training, resuming, evaluation and export all name parameters the same way however
    many networks the process built before.
    """
    import paddle

    with paddle.utils.unique_name.guard():
        return build_model({**cfg["model"], "in_channels": 1,
                            "out_channels": len(cfg.get("label", {}).get("levels", ["L3"]))})


def target_col_range(cfg: Mapping[str, Any], col_range: tuple[float, float]) -> tuple[float, float]:
    """The columns the band target of ``cfg``'s network covers: the band's (``col_range``), or
    every column for a network whose map is constant along each row (``predicts_rows``, the
    1-D ``RowHead``): its target is then the band's row profile broadcast over the width."""
    return (0.0, 1.0) if getattr(MODELS.get(cfg["model"]["type"]), "predicts_rows", False) else col_range


def net_stride(cfg: Mapping[str, Any]) -> int:
    """The down-sampling factor of ``cfg``'s network: images are padded to a multiple of it."""
    return int(build_net(cfg).stride)


__all__ = ["MODELS", "AttentionUNet", "RowHead", "U2Net", "UNet", "UNet3Plus", "UNetPlusPlus",
           "build_model", "build_net", "net_stride", "target_col_range"]
