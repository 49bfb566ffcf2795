"""Every preset torchvision also defines is torchvision's network, exactly.

For each: the same initialisation scheme (compared tensor by tensor before any loading), then
``load_state_dict(torchvision.models.NAME(num_classes=K).state_dict(), strict=True)`` and the
same eval-mode outputs (relative error below 1e-5; batch-norm eps included, since running
statistics are randomised first). GoogLeNet and Inception-v3 also return torchvision's
auxiliary outputs in training mode. Both networks are built once per test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import nasblocks

K = 7  # a class count no default uses, so the classifier really is rebuilt

# name -> input side. Small inputs keep the suite fast; Inception-v3's auxiliary head needs
# the paper's 299x299 (a 17x17 Mixed_6e map).
SIZES = {
    "alexnet": 64,
    "vgg11": 32,
    "vgg11_bn": 32,
    "vgg13": 32,
    "vgg13_bn": 32,
    "vgg16": 32,
    "vgg16_bn": 32,
    "vgg19": 32,
    "vgg19_bn": 224,
    "resnet18": 64,
    "resnet34": 64,
    "resnet50": 64,
    "resnet101": 64,
    "resnet152": 64,
    "resnext50_32x4d": 64,
    "resnext101_32x8d": 64,
    "resnext101_64x4d": 64,
    "wide_resnet50_2": 64,
    "wide_resnet101_2": 64,
    "googlenet": 64,
    "inception_v3": 299,
    "shufflenet_v2_x0_5": 64,
    "shufflenet_v2_x1_0": 64,
    "mobilenet_v2": 64,
}
# The largest (each VGG also costs seconds to initialise its 25088 x 4096 linear layer twice).
SLOW = {"vgg19", "vgg19_bn", "resnet152", "resnext101_32x8d", "resnext101_64x4d",
        "wide_resnet101_2"}  # fmt: skip
AUX = {"googlenet": 2, "inception_v3": 1}

CASES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SIZES]


def torchvision_model(name: str, **kwargs) -> nn.Module:
    if name in AUX:  # silence the "init_weights will default to False" notice
        kwargs.setdefault("init_weights", True)
    return getattr(torchvision.models, name)(num_classes=K, **kwargs)


def randomize_bn_stats(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so eval outputs depend on every BN buffer and eps."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            # Kept near the identity so 100-layer nets stay finite in eval mode.
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 1.0)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def norm_settings(model: nn.Module) -> dict[str, tuple[float, float | None]]:
    return {
        name: (m.eps, m.momentum)
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    }


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def assert_same_init(ours: nn.Module, theirs: nn.Module) -> None:
    """Same scheme: per tensor, constants equal and random draws of the same mean and std.

    The sampling error of a std estimated from n values is about std / sqrt(2n), so the
    tolerance shrinks with the tensor size; tensors under 256 values are too noisy to compare
    unless constant. A wrong scheme (fan-in for fan-out, N(0, 0.01) for the default uniform)
    moves the std by a factor far outside these bounds.
    """
    mine = ours.state_dict()
    checked = 0
    for key, t in theirs.state_dict().items():
        o = mine[key]
        if not t.is_floating_point():
            continue
        if t.min() == t.max():  # ones, zeros: BN scale/shift and running statistics
            assert torch.equal(o, t), f"{key}: expected the constant {t.flatten()[0].item()}"
            continue
        n = t.numel()
        if n < 256:
            continue
        ts, os_ = t.std().item(), o.std().item()
        tol = 0.05 + 3 / math.sqrt(n)
        assert abs(os_ / ts - 1) < tol, f"{key}: std {os_:.4g}, torchvision's {ts:.4g}"
        assert abs(o.mean().item() - t.mean().item()) < 6 * ts / math.sqrt(n) + 1e-7, key
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", CASES)
def test_preset_is_torchvision_exactly(name: str) -> None:
    side = SIZES[name]
    torch.manual_seed(0)
    theirs = torchvision_model(name)
    ours = nasblocks.build(name, num_classes=K, input_size=side)

    # Same keys and shapes, and the same initialisation scheme, before anything is loaded.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert_same_init(ours, theirs)
    # eps and momentum are not in the state_dict: compare them module by module.
    assert norm_settings(ours) == norm_settings(theirs)

    randomize_bn_stats(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours.eval()
        theirs.eval()
        got, want = ours(x), theirs(x)
    assert got.shape == (2, K)
    assert torch.isfinite(want).all()
    assert rel_err(got, want) < 1e-5

    if name in AUX:  # training mode: (logits, aux...) in torchvision's order
        ours.train()
        theirs.train()
        with torch.no_grad():
            torch.manual_seed(2)
            got = ours(x)
            torch.manual_seed(2)
            want = theirs(x)
        assert isinstance(got, tuple) and len(got) == len(want) == 1 + AUX[name]
        for g, w in zip(got, want, strict=True):
            assert g.shape == (2, K)
            assert rel_err(g, w) < 1e-5


def test_eps_of_googlenet_and_inception_is_1e_3() -> None:
    """Spelled out, since the main test compares eps with torchvision's only as a whole."""
    for name in ("googlenet", "inception_v3"):
        spec = nasblocks.load_spec(name, {"input_size": 299 if name == "inception_v3" else 64})
        assert spec.doc.defaults.norm_eps == 1e-3
        eps = {layer.block.norm_eps for layer in spec.layers if hasattr(layer.block, "norm_eps")}
        assert eps == {1e-3}, name


def test_zero_init_last_matches_torchvision_zero_init_residual() -> None:
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=K, zero_init_residual=True)
    ours = nasblocks.build(
        "resnet18", num_classes=K, input_size=64, **{"stages.zero_init_last": True}
    )
    assert_same_init(ours, theirs)
    state = ours.state_dict()
    zeroed = [k for k in state if k.endswith("bn2.weight")]
    assert len(zeroed) == 8
    assert all(state[k].eq(0).all() for k in zeroed)
    assert state["layer1.0.bn1.weight"].eq(1).all()


def test_transform_input_matches_torchvision() -> None:
    """googlenet's optional input re-normalization (torchvision's transform_input=True)."""
    torch.manual_seed(0)
    # PyTorch's default init keeps the output sensitive to the input (std 0.01 flattens it).
    theirs = torchvision_model("googlenet", transform_input=True, init_weights=False).eval()
    ours = nasblocks.build(
        "googlenet", num_classes=K, input_size=64, **{"vars.transform_input": True}
    ).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(ours(x), theirs(x)) < 1e-5
        # The paper's preprocessing, from ImageNet's mean and std to (x - 0.5) / 0.5:
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        expected = (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1) - 0.5) / 0.5
        torch.testing.assert_close(ours.transform_input(x), expected)
