"""Zero-cost proxies: score an untrained network in seconds, from one minibatch or none.

>>> from nasblocks import proxies
>>> proxies.names()
['flops', 'grad_norm', 'jacov', 'naswot', 'params', 'snip', 'synflow', 'zico']
>>> proxies.score(model, "synflow", torch.randn(8, 3, 32, 32))  # doctest: +SKIP

Each proxy's docstring gives its paper's definition and the reference code it follows
(mostly SamsungLabs/zero-cost-nas, Abdelfattah et al. 2021, "Zero-Cost Proxies for
Lightweight NAS", ICLR). Scoring works on a float64 deep copy of the model, so the model's
weights, buffers, gradients, train mode and ``requires_grad`` flags are left as they were,
and under a fixed seed in a forked RNG, so the same inputs give the same score and the
caller's random state is not advanced.
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.proxies import counts, gradients, naswot, synflow, zico  # noqa: F401 (register)
from nasblocks.proxies._registry import ProxyError, get_proxy, names

__all__ = ["ProxyError", "names", "score"]

SEED = 0
"""Seed of the forked RNG a proxy runs under (dropout, RReLU)."""


def score(
    model: nn.Module, name: str, inputs: torch.Tensor, targets: torch.Tensor | None = None
) -> float:
    """The proxy ``name`` of ``model`` on ``inputs`` (N, C, H, W), or (N, F) for a flat input.

    ``targets`` (N,) are class indices, needed by the loss-based proxies (``grad_norm``,
    ``snip``, ``zico``). Unknown names, missing targets and too small a batch raise
    :class:`ProxyError`.
    """
    proxy = get_proxy(name)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        raise ProxyError(f"proxy {name!r}: inputs must be a batch tensor (N, C, H, W)")
    n = inputs.shape[0]
    if n < proxy.min_batch:
        raise ProxyError(
            f"proxy {name!r} needs a batch of at least {proxy.min_batch} inputs, got {n}"
        )
    if proxy.needs_targets:
        if targets is None:
            raise ProxyError(f"proxy {name!r} needs targets (class indices, shape ({n},))")
        if tuple(targets.shape) != (n,):
            raise ProxyError(
                f"proxy {name!r}: targets must have shape ({n},), got {tuple(targets.shape)}"
            )
    param = next(model.parameters(), None)
    device = param.device if param is not None else inputs.device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.enable_grad():
        torch.manual_seed(SEED)
        return float(proxy.fn(model, inputs, targets))
