"""A tiny name -> class registry so configs choose components by ``type:`` (as in PaddleSeg).

Example::

    MODELS = Registry("models")

    @MODELS.add
    class UNet(paddle.nn.Layer): ...

    net = MODELS.build({"type": "UNet", "base_channels": 16})

Keyword arguments are checked against the component's signature before it is called, so a typo in
a config (``base_channel: 16``) is an error that names the key, not a silently ignored value.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Mapping


class Registry:
    """Maps names to classes or factory functions of one kind (models, losses, ...).

    Args:
        kind: what is registered, used in error messages ("models", "losses").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def add(self, obj: Callable[..., Any] | None = None, *, name: str | None = None):
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator.

        ``@REG.add`` and ``@REG.add(name="Other")`` both work. Returns ``obj`` unchanged.

        Raises:
            ValueError: the name is already taken (two components must never shadow each other).
        """
        def register(item: Callable[..., Any]) -> Callable[..., Any]:
            key = name or item.__name__
            if key in self._items:
                raise ValueError(f"{self.kind}: {key!r} is already registered")
            self._items[key] = item
            return item

        return register if obj is None else register(obj)

    def get(self, name: str) -> Callable[..., Any]:
        """The component registered as ``name``; ValueError listing the known names otherwise."""
        if name not in self._items:
            raise ValueError(
                f"unknown {self.kind} type {name!r}; known: {', '.join(self.names) or '(none)'}")
        return self._items[name]

    def build(self, cfg: Mapping[str, Any]) -> Any:
        """Instantiate ``cfg["type"]`` with the other keys of ``cfg`` as keyword arguments.

        Args:
            cfg: ``{"type": name, **kwargs}``; not modified.

        Raises:
            ValueError: ``type`` missing or unknown (the message lists the known names), or a key
                the component does not accept (the message names it and lists the accepted ones).
        """
        if "type" not in cfg:
            raise ValueError(f"{self.kind} config needs a 'type' key; known: {', '.join(self.names)}")
        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        item = self.get(cfg["type"])
        params = inspect.signature(item).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = [n for n, p in params.items()
                    if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                  inspect.Parameter.KEYWORD_ONLY)]
        unknown = [k for k in kwargs if k not in accepted]
        if unknown and not takes_any:
            raise ValueError(f"{self.kind} type {cfg['type']!r}: unknown argument(s) "
                             f"{', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}")
        return item(**kwargs)

    @property
    def names(self) -> list[str]:
        """Registered names, sorted (feed these to argparse ``choices``)."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.names})"
