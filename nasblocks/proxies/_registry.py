"""The proxy registry: ``@register_proxy("name")`` adds a scoring function; duplicates and
unknown names raise (with the closest valid names)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nasblocks.errors import NasBlocksError
from nasblocks.registry import suggest

if TYPE_CHECKING:
    import torch
    from torch import nn

ProxyFn = Callable[["nn.Module", "torch.Tensor", "torch.Tensor | None"], float]


class ProxyError(NasBlocksError, ValueError):
    """A proxy that cannot score as asked: unknown name, missing targets, too small a batch."""


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: ProxyFn
    needs_targets: bool
    min_batch: int
    """Fewest samples in ``inputs`` the proxy is defined for."""


_PROXIES: dict[str, Proxy] = {}


def register_proxy(
    name: str, *, needs_targets: bool = False, min_batch: int = 1
) -> Callable[[ProxyFn], ProxyFn]:
    def add(fn: ProxyFn) -> ProxyFn:
        if name in _PROXIES:
            raise ProxyError(f"proxy {name!r} is already registered")
        _PROXIES[name] = Proxy(name, fn, needs_targets, min_batch)
        return fn

    return add


def get_proxy(name: str) -> Proxy:
    try:
        return _PROXIES[name]
    except KeyError:
        valid = ", ".join(names())
        raise ProxyError(
            f"unknown proxy {name!r}{suggest(name, _PROXIES)}; valid: {valid}"
        ) from None


def names() -> list[str]:
    """Every registered proxy name, sorted."""
    return sorted(_PROXIES)
