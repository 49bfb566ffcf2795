"""Size proxies: trainable parameters and multiply-accumulates of one forward.

Both are the baselines of Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"
(ICLR), and of most NAS papers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nasblocks.proxies._registry import register_proxy


@register_proxy("params")
def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """Number of trainable parameters (``requires_grad``), shared ones counted once."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


@register_proxy("flops")
def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """Multiply-accumulates of one eval-mode forward of a batch of 1 at ``inputs``' size.

    The project's convention (:mod:`nasblocks.analysis`): ``FlopCounterMode`` FLOPs halved,
    normalization, activations and pooling not counted. A nasblocks network (one with a
    ``spec``) is counted by :func:`nasblocks.analysis.count` itself; any other module by the
    same counter run on a copy.
    """
    from nasblocks.spec import Spec

    shape = tuple(inputs.shape[1:])
    spec = getattr(model, "spec", None)
    if isinstance(spec, Spec):
        from nasblocks.analysis import count

        return float(count(spec, shape)[1])
    from torch.utils.flop_counter import FlopCounterMode

    net = copy.deepcopy(model).eval()
    param = next(net.parameters(), None)
    like = param if param is not None else inputs.float()
    x = torch.zeros(1, *shape, dtype=like.dtype, device=like.device)  # (1, C, H, W)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return float(counter.get_total_flops() // 2)
