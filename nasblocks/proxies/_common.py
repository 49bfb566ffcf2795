"""What every proxy does to the network before scoring it.

Proxies run on a deep copy in float64, so the caller's weights, buffers, gradients, train mode
and ``requires_grad`` flags are never touched and the score does not depend on float32
rounding. The layers a proxy sums over are those of the reference code (zero-cost-nas
``get_layer_metric_array``, ZiCo ``getgrad``): the weights of convolutions and linear layers,
not biases nor normalization parameters.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nasblocks.proxies._registry import ProxyError

WEIGHTED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def working_copy(model: nn.Module, *, train: bool, drop_batchnorm: bool = False) -> nn.Module:
    """A float64 deep copy of ``model`` in train (or eval) mode with no gradients."""
    net = copy.deepcopy(model)
    if drop_batchnorm:
        for name, module in list(net.named_modules()):
            if name and isinstance(module, BATCH_NORMS):
                parent, _, child = name.rpartition(".")
                setattr(net.get_submodule(parent), child, nn.Identity())
    net.double()
    net.train(train)
    net.zero_grad(set_to_none=True)
    return net


def as_input(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` as a fresh float64 tensor on the network's device."""
    param = next(net.parameters(), None)
    device = param.device if param is not None else x.device
    return x.detach().to(device=device, dtype=torch.float64).clone()


def main_output(out: object) -> torch.Tensor:
    """The main output: the tensor itself, or the first item of a tuple (a nasblocks network
    in train mode returns a named tuple, main output first, auxiliary heads after)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ProxyError(
        f"the model returned {type(out).__name__}; proxies need a tensor or a tuple whose "
        "first item is the main output"
    )


WeightedLayer = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear


def weighted_layers(net: nn.Module) -> list[WeightedLayer]:
    return [m for m in net.modules() if isinstance(m, WEIGHTED_LAYERS)]


def cross_entropy_backward(net: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> None:
    """Accumulate d(mean cross-entropy)/d(weights) into ``.grad``."""
    logits = main_output(net(x))
    F.cross_entropy(logits, targets.to(logits.device)).backward()
