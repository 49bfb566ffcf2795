"""Zero-cost proxies: each checked against a value worked out by hand on a tiny network.

Weights and inputs are dyadic (exact in float32), so the float64 copy a proxy scores holds
exactly the numbers written here and the expected values agree to rounding (1e-9). Expected
gradients come from the chain rule written out below, never from autograd.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import nasblocks
from nasblocks import proxies
from nasblocks.analysis import count
from nasblocks.errors import NasBlocksError

TOL = 1e-9


def linear(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


# ---- the analytic cross-entropy gradients of relu(W1 x) -> W2, biases off --------------------

W1 = [[1.0, -0.5], [0.5, 2.0], [-1.0, 0.25]]  # (3, 2)
W2 = [[0.5, -1.0, 1.5], [-2.0, 0.75, 1.0]]  # (2, 3)
XS = [[1.0, 2.0], [-0.5, 1.0], [2.0, -1.0], [0.25, 0.5]]
YS = [0, 1, 1, 0]


def two_layer_net() -> nn.Module:
    return nn.Sequential(linear(W1), nn.ReLU(), linear(W2))


def ce_gradients(xs, ys):
    """dL/dW1, dL/dW2 of L = mean over samples of -log softmax(W2 relu(W1 x))[y]."""
    g1 = [[0.0] * 2 for _ in range(3)]
    g2 = [[0.0] * 3 for _ in range(2)]
    n = len(xs)
    for x, y in zip(xs, ys, strict=True):
        pre = [sum(W1[j][k] * x[k] for k in range(2)) for j in range(3)]
        h = [max(p, 0.0) for p in pre]
        z = [sum(W2[i][j] * h[j] for j in range(3)) for i in range(2)]
        e = [math.exp(v) for v in z]
        delta = [e[i] / sum(e) - (1.0 if i == y else 0.0) for i in range(2)]  # dL_n/dz
        for i in range(2):
            for j in range(3):
                g2[i][j] += delta[i] * h[j] / n
        for j in range(3):
            back = sum(W2[i][j] * delta[i] for i in range(2)) * (1.0 if pre[j] > 0 else 0.0)
            for k in range(2):
                g1[j][k] += back * x[k] / n
    return g1, g2


def entries(matrix):
    return [v for row in matrix for v in row]


def frobenius(matrix) -> float:
    return math.sqrt(sum(v * v for v in entries(matrix)))


# ---- registry and errors ----------------------------------------------------------------------


def test_names_lists_every_proxy():
    assert proxies.names() == [
        "flops",
        "grad_norm",
        "jacov",
        "naswot",
        "params",
        "snip",
        "synflow",
        "zico",
    ]


def test_unknown_name_raises_with_suggestion():
    with pytest.raises(
        proxies.ProxyError, match=r"unknown proxy 'synflw'.*did you mean 'synflow'"
    ):
        proxies.score(two_layer_net(), "synflw", torch.ones(2, 2))
    assert issubclass(proxies.ProxyError, NasBlocksError)


def test_loss_proxies_need_targets_and_batch_proxies_a_batch():
    with pytest.raises(proxies.ProxyError, match="needs targets"):
        proxies.score(two_layer_net(), "grad_norm", torch.ones(2, 2))
    with pytest.raises(proxies.ProxyError, match="shape"):
        proxies.score(two_layer_net(), "snip", torch.ones(2, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(proxies.ProxyError, match="at least 2"):
        proxies.score(two_layer_net(), "naswot", torch.ones(1, 2))


# ---- each proxy against its hand-computed value -----------------------------------------------


def test_params_counts_trainable_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False))  # 3*4 + 4 + 4*2
    assert proxies.score(net, "params", torch.ones(1, 3)) == 24
    net[0].weight.requires_grad_(False)
    assert proxies.score(net, "params", torch.ones(1, 3)) == 24 - 12


def test_flops_counts_multiply_accumulates_at_batch_one():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    # 1x1 conv: 2 * 3 MACs at each of 4 * 4 positions; linear: 48 * 5; batch size ignored
    assert proxies.score(net, "flops", torch.ones(7, 2, 4, 4)) == 2 * 3 * 16 + 48 * 5


def test_flops_of_a_preset_is_the_analysis_count():
    model = nasblocks.build("cifar_net", num_classes=10)
    x = torch.zeros(2, 3, 32, 32)
    expected = count("cifar_net")[1]
    assert proxies.score(model, "flops", x) == expected
    plain = copy.deepcopy(model)  # without `spec`: the fallback counts the module itself
    plain.__dict__.pop("spec", None)
    assert not hasattr(plain, "spec")
    assert proxies.score(plain, "flops", x) == expected


def test_synflow_closed_form_without_batchnorm():
    # abs(): W1 = [[1, 2], [.5, 3]], b1 = [1, .25], W2 = [1.5, 2]; input all ones.
    # h = |W1| 1 + |b1| = [4, 3.75];  dR/dW2_j = h_j;  dR/dW1_jk = |W2_j| (ReLU open, x = 1)
    net = nn.Sequential(
        linear([[1.0, -2.0], [0.5, 3.0]], [-1.0, 0.25]),
        nn.BatchNorm1d(2),  # removed, as in the reference
        nn.ReLU(),
        linear([[-1.5, 2.0]], [0.5]),
    )
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([-3.0, 0.5]))
        net[1].running_var.fill_(16.0)
    expected = (1 + 2) * 1.5 + (0.5 + 3) * 2 + 1.5 * 4 + 2 * 3.75
    assert expected == 25.0
    x = torch.randn(3, 2)  # only its shape is used
    assert abs(proxies.score(net, "synflow", x) - expected) < TOL


def test_naswot_log_det_of_the_hamming_kernel():
    # pre-activations of x = 1: [1, -1, -1] -> code 100; of x = 2: [2, -2, 1] -> code 101.
    # K_ij = units where the codes agree: [[3, 2], [2, 3]], det 5.
    net = nn.Sequential(
        linear([[1.0], [-1.0], [2.0]], [0.0, 0.0, -3.0]), nn.ReLU(), linear([[1.0, 1.0, 1.0]])
    )
    score = proxies.score(net, "naswot", torch.tensor([[1.0], [2.0]]))
    assert abs(score - math.log(3 * 3 - 2 * 2)) < TOL


class WithSideHead(nn.Module):
    """A main path and a side head (like an auxiliary classifier) returned after it."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            linear([[1.0], [-1.0], [2.0]], [0.0, 0.0, -3.0]), nn.ReLU(), linear([[1.0, 1, 1]])
        )
        self.side = nn.Sequential(linear([[1.0], [1.0]]), nn.ReLU())

    def forward(self, x):
        return self.main(x), self.side(x)


def test_naswot_leaves_out_rectifiers_off_the_main_output():
    score = proxies.score(WithSideHead(), "naswot", torch.tensor([[1.0], [2.0]]))
    assert abs(score - math.log(5)) < TOL


def test_jacov_eigenvalues_of_the_jacobian_correlation():
    # f(x) = v . relu(W x): sample 0 opens unit 0 only (pre [1, -.5]), sample 1 unit 1 only
    # (pre [-.5, 3]), so J_0 = v_0 W_0 and J_1 = v_1 W_1.
    w, v = [[1.0, 0.5, -1.0], [-0.5, 1.0, 2.0]], [1.5, -2.0]
    net = nn.Sequential(linear(w), nn.ReLU(), linear([v]))
    j0 = [v[0] * a for a in w[0]]
    j1 = [v[1] * a for a in w[1]]
    c0 = [a - sum(j0) / 3 for a in j0]
    c1 = [a - sum(j1) / 3 for a in j1]
    r = sum(a * b for a, b in zip(c0, c1, strict=True)) / math.sqrt(
        sum(a * a for a in c0) * sum(b * b for b in c1)
    )
    k = 1e-5
    expected = -sum(math.log(e + k) + 1 / (e + k) for e in (1 + r, 1 - r))  # eig [[1, r], [r, 1]]
    score = proxies.score(net, "jacov", torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    assert abs(score - expected) < TOL


def test_grad_norm_sums_per_layer_gradient_norms():
    g1, g2 = ce_gradients(XS, YS)
    score = proxies.score(two_layer_net(), "grad_norm", torch.tensor(XS), torch.tensor(YS))
    assert abs(score - (frobenius(g1) + frobenius(g2))) < TOL


def test_snip_sums_connection_sensitivities():
    g1, g2 = ce_gradients(XS, YS)
    expected = sum(
        abs(w * g)
        for w, g in zip(entries(W1) + entries(W2), entries(g1) + entries(g2), strict=True)
    )
    score = proxies.score(two_layer_net(), "snip", torch.tensor(XS), torch.tensor(YS))
    assert abs(score - expected) < TOL


def test_zico_inverse_coefficient_of_variation_over_two_batches():
    first, second = ce_gradients(XS[:2], YS[:2]), ce_gradients(XS[2:], YS[2:])  # two halves
    expected = 0.0
    for a, b in zip(first, second, strict=True):
        total = 0.0
        for ga, gb in zip(entries(a), entries(b), strict=True):
            std = abs(ga - gb) / 2  # population std of two values
            if std != 0:
                total += (abs(ga) + abs(gb)) / 2 / std
        expected += math.log(total)
    score = proxies.score(two_layer_net(), "zico", torch.tensor(XS), torch.tensor(YS))
    assert abs(score - expected) < TOL


# ---- scoring leaves the model alone; real networks ----------------------------------------------


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def mode_and_grad_flags(model: nn.Module) -> list[tuple[bool, list[bool]]]:
    return [
        (m.training, [p.requires_grad for p in m.parameters(recurse=False)])
        for m in model.modules()
    ]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", proxies.names())
def test_scoring_does_not_change_the_model(name, train):
    torch.manual_seed(0)
    model = small_cnn().train(train)
    model[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = mode_and_grad_flags(model)
    x, t = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 0])
    rng = torch.get_rng_state()
    proxies.score(model, name, x, t)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert mode_and_grad_flags(model) == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("name", proxies.names())
def test_proxies_on_a_preset_are_finite_and_deterministic(name):
    torch.manual_seed(0)
    model = nasblocks.build("cifar_net", num_classes=10)
    x, t = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    first = proxies.score(model, name, x, t)
    assert math.isfinite(first)
    assert proxies.score(model, name, x, t) == first


def test_proxies_on_a_residual_network_with_batchnorm():
    torch.manual_seed(0)
    model = nasblocks.build("resnet18", num_classes=10)
    x, t = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    for name in proxies.names():
        assert math.isfinite(proxies.score(model, name, x, t)), name
