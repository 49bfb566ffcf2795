"""Loss-gradient proxies of Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"
(ICLR): ``grad_norm`` and ``snip`` (Lee et al. 2019, "SNIP: Single-shot Network Pruning based
on Connection Sensitivity", ICLR).

Both follow the zero-cost-nas reference (``get_grad_norm_arr``, ``compute_snip_per_weight``):
one minibatch, the mean cross-entropy of the main output against ``targets``, the network in
train mode (batch norm uses the batch's statistics, as for the fresh networks the reference
scores), summed over the weights of convolutions and linear layers. A weight that gets no
gradient (frozen, or off the output's path) contributes 0, as in the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from nasblocks.proxies._common import (
    as_input,
    cross_entropy_backward,
    weighted_layers,
    working_copy,
)
from nasblocks.proxies._registry import register_proxy


def _loss_gradients(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, dL/dweight)`` of every convolution and linear layer that got a gradient."""
    net = working_copy(model, train=True)
    cross_entropy_backward(net, as_input(net, inputs), targets)
    return [
        (layer.weight.detach(), layer.weight.grad)
        for layer in weighted_layers(net)
        if layer.weight.grad is not None
    ]


@register_proxy("grad_norm", needs_targets=True)
def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """``sum over layers l of ||dL/dW_l||_2``: the Euclidean (Frobenius) norm of each layer's
    weight gradient, summed over layers as the reference's ``sum_arr`` does (not the norm
    of the whole concatenated gradient)."""
    assert targets is not None
    grads = _loss_gradients(model, inputs, targets)
    return float(sum((g.norm().cpu() for _, g in grads), torch.zeros((), dtype=torch.float64)))


@register_proxy("snip", needs_targets=True)
def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """Connection sensitivity ``sum over weights of |theta * dL/dtheta|``. The reference gets
    it as the gradient wrt a multiplicative mask of ones, ``dL/dc = theta * dL/dtheta``."""
    assert targets is not None
    grads = _loss_gradients(model, inputs, targets)
    total = torch.zeros((), dtype=torch.float64)
    for w, g in grads:
        total += (w * g).abs().sum().cpu()
    return float(total)
