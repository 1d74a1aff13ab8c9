"""Networks, registered by name so a config chooses one with ``model: {type: UNet, ...}``.

Add a network by writing its module here and one ``MODELS.add(...)`` line below: this list is
the single source of the names that configs and command-line choices accept.
"""
from __future__ import annotations

from typing import Any, Mapping

from l3loc.models.unet import UNet
from l3loc.registry import Registry

MODELS = Registry("models")
MODELS.add(UNet)


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


__all__ = ["MODELS", "UNet", "build_model", "build_net"]
