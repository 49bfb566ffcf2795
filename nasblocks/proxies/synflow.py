"""SynFlow: Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow" (NeurIPS), as a NAS proxy in Abdelfattah et al. 2021, "Zero-Cost
Proxies for Lightweight NAS" (ICLR).
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.proxies._common import main_output, weighted_layers, working_copy
from nasblocks.proxies._registry import register_proxy


@register_proxy("synflow")
def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """Data-free synaptic flow ``sum over weights of theta * dR/dtheta``.

    ``R = sum(f_|theta|(1))``: every parameter and buffer replaced by its absolute value (the
    sign linearisation), the network fed one all-ones input of ``inputs``' per-sample shape,
    in float64 so that deep networks do not overflow. As in the zero-cost-nas reference
    (``compute_synflow_per_weight``, measure ``synflow`` registered with ``bn=False``),
    batch-norm layers are removed (their forward becomes the identity), and the sum runs over
    the weights of convolutions and linear layers; with everything non-negative the
    reference's ``abs(theta * grad)`` equals ``theta * grad``. The reference leaves the mode
    of a fresh network (train); with batch norm gone that changes only dropout, and we use
    eval mode so dropout is off and auxiliary heads do not run: the score is deterministic.
    ``inputs`` gives only the shape; ``targets`` are not used.
    """
    net = working_copy(model, train=False, drop_batchnorm=True)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():  # integer buffers (BN's counter) are gone or >= 0
                tensor.abs_()
    param = next(net.parameters(), None)
    device = param.device if param is not None else inputs.device
    ones = torch.ones(1, *inputs.shape[1:], dtype=torch.float64, device=device)  # (1, C, H, W)
    main_output(net(ones)).sum().backward()
    total = torch.zeros((), dtype=torch.float64)
    for layer in weighted_layers(net):
        if layer.weight.grad is not None:
            total += (layer.weight.detach() * layer.weight.grad).abs().sum().cpu()
    return float(total)
