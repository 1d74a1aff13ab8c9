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


__all__ = ["MODELS", "UNet", "build_model"]
