"""Mellor et al., "Neural Architecture Search without Training": the ReLU-code kernel score
of the ICML 2021 version (``naswot``) and the Jacobian-covariance score of arXiv v1 (2020,
``jacov``).

Both score the network in train mode (batch norm on batch statistics), as the references do
for the fresh networks they score: BayesWatch/nas-without-training ``score_networks.py`` and
zero-cost-nas ``compute_jacob_cov``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasblocks.proxies._common import as_input, main_output, working_copy
from nasblocks.proxies._registry import register_proxy

RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
"""The modules ``naswot`` reads codes from: the reference hooks every module whose type name
contains "ReLU", which in ``torch.nn`` are these. ``F.relu`` called inside a ``forward`` is
not a module and is not seen."""

JACOV_K = 1e-5


@register_proxy("naswot", min_batch=2)
def naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """``log|det K|`` with ``K = sum over rectifier modules of (c c^T + (1 - c)(1 - c)^T)``.

    ``c`` (N, units) is the binary code of a module's units over the minibatch (1 where its
    input is positive), so ``K_ij = N_A - d_H(c_i, c_j)``: the number of units where samples
    i and j fall on the same side. Following the reference, a module counts only when its
    output reaches the main output by a differentiable path (it marks modules visited by a
    backward pass), so auxiliary heads are left out; a module called several times
    contributes once per call. ``targets`` are not used.
    """
    net = working_copy(model, train=True)
    records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        code = (args[0].detach().flatten(1) > 0).double()  # (N, units)
        records.append((code @ code.T + (1 - code) @ (1 - code).T, out))

    for module in net.modules():
        if isinstance(module, RECTIFIERS):
            module.register_forward_hook(record)
    x = as_input(net, inputs).requires_grad_(True)
    y = main_output(net(x))
    live = [(k, out) for k, out in records if out.requires_grad]
    reach = torch.autograd.grad(y.sum(), [out for _, out in live], allow_unused=True)
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for (k, _), grad in zip(live, reach, strict=True):
        if grad is not None:
            kernel += k
    return float(torch.linalg.slogdet(kernel.cpu()).logabsdet)


@register_proxy("jacov", min_batch=2)
def jacov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> float:
    """``-sum over eigenvalues v of Sigma_J of (log(v + k) + 1 / (v + k))``, ``k = 1e-5``.

    ``J`` (N, input size) holds, per sample, the gradient of the sum of the main output wrt
    that sample's input (zero-cost-nas ``get_batch_jacobian``: ``y.backward(ones_like(y))``),
    and ``Sigma_J`` is the correlation matrix of its rows (``np.corrcoef``). The matrix is
    symmetric, so its (real) eigenvalues come from ``eigvalsh`` where the reference calls
    ``eig``. A sample whose Jacobian is constant makes the correlation undefined: NaN, as the
    reference returns. ``targets`` are not used.
    """
    net = working_copy(model, train=True)
    x = as_input(net, inputs).requires_grad_(True)
    y = main_output(net(x))
    y.backward(torch.ones_like(y))
    # No gradient: the output does not depend on the input (a zero Jacobian, so NaN below).
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    jacobian = grad.flatten(1).cpu()  # (N, C*H*W)
    corr = torch.corrcoef(jacobian)
    if not torch.isfinite(corr).all():
        return math.nan
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + JACOV_K) + 1.0 / (v + JACOV_K)).sum())
