"""ZiCo: Li et al. 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients" (ICLR); official code SLDGroup/ZiCo ``ZeroShotProxy/compute_zico.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasblocks.proxies._common import (
    as_input,
    cross_entropy_backward,
    weighted_layers,
    working_copy,
)
from nasblocks.proxies._registry import register_proxy

ZICO_BATCHES = 2
"""Minibatches ``inputs`` is split into (as the zero-cost-nas ports do, ``split_data=2``)."""


@register_proxy("zico", needs_targets=True, min_batch=ZICO_BATCHES)
def zico(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """``sum over layers l of log(sum over weights w of l of mean|g_w| / std(g_w))``.

    ``g_w`` is the gradient of the mean cross-entropy wrt weight ``w`` on each of
    ``ZICO_BATCHES`` consecutive slices of ``inputs``; mean and (population, ``np.std``)
    standard deviation are over the slices. As in ``caculate_zico``, weights with zero std
    are skipped and a layer whose sum is 0 adds nothing; layers are the convolutions and
    linear layers, in train mode. Gradients are zeroed between slices, as the paper's
    per-batch gradients are (the official ``getzico`` never calls ``zero_grad``, so it
    accumulates them; most ports zero them).
    """
    assert targets is not None
    net = working_copy(model, train=True)
    x = as_input(net, inputs)
    layers = weighted_layers(net)
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    n = x.shape[0]
    for i in range(ZICO_BATCHES):
        start, end = i * n // ZICO_BATCHES, (i + 1) * n // ZICO_BATCHES
        net.zero_grad(set_to_none=True)
        cross_entropy_backward(net, x[start:end], targets[start:end])
        for grads, layer in zip(per_layer, layers, strict=True):
            if layer.weight.grad is not None:
                grads.append(layer.weight.grad.detach().flatten().cpu())
    total = 0.0
    for grads in per_layer:
        if len(grads) < ZICO_BATCHES:  # no gradient in some slice (frozen, off the path)
            continue
        g = torch.stack(grads)  # (batches, weights)
        std = (g - g.mean(dim=0)).square().mean(dim=0).sqrt()  # np.std; faster than .std(0)
        nonzero = std != 0
        ratio_sum = float((g.abs().mean(dim=0)[nonzero] / std[nonzero]).sum())
        if ratio_sum != 0:
            total += math.log(ratio_sum)
    return total
