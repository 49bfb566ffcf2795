"""Shake-Shake: random per-image mixing forward, an independent draw backward, 0.5 at eval,
the paper's shortcut, shape errors, and the CIFAR ResNet-26 2x32d preset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from block_helpers import build, randomize

import nasblocks
from nasblocks.errors import ShapeError, SpecError
from nasblocks.modules.shake_shake import shake, shake_shake_mix
from nasblocks.registry import block_spec


def test_the_mix_weights_forward_by_alpha_and_gradients_by_beta() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 4, 4, generator=gen, requires_grad=True)
    b = torch.randn(3, 2, 4, 4, generator=gen, requires_grad=True)
    alpha = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1)
    beta = torch.tensor([0.8, 0.3, 0.2]).view(3, 1, 1, 1)
    out = shake_shake_mix(a, b, alpha, beta)
    torch.testing.assert_close(out, alpha * a + (1 - alpha) * b)
    g = torch.randn(out.shape, generator=gen)
    grad_a, grad_b = torch.autograd.grad(out, (a, b), g)
    torch.testing.assert_close(grad_a, beta * g)
    torch.testing.assert_close(grad_b, (1 - beta) * g)
    assert not torch.allclose(grad_a, alpha * g)  # not the gradient of the forward


def _traced_block(in_channels: int, out_channels: int, stride: int = 1):
    """A training-mode block whose branch and shortcut outputs are captured (and keep their
    gradients), so the mix can be read back from the block's output."""
    block = build("shake_shake", (in_channels, 6, 6), out_channels=out_channels, stride=stride)
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output):
            if output.requires_grad:
                output.retain_grad()
            seen[name] = output

        return hook

    for name in ("branch1", "branch2", "shortcut"):
        getattr(block, name).register_forward_hook(keep(name))
    return block.train(), seen


def _per_image(t: torch.Tensor) -> torch.Tensor:
    """The one value per image of a tensor that is constant over C, H, W (checked)."""
    flat = t.flatten(1)
    torch.testing.assert_close(flat, flat[:, :1].expand_as(flat))
    return flat[:, 0]


@pytest.mark.parametrize(("in_channels", "out_channels", "stride"), [(8, 8, 1), (4, 8, 2)])
def test_training_mixes_by_a_random_alpha_per_image_and_backward_by_another(
    in_channels: int, out_channels: int, stride: int
) -> None:
    block, seen = _traced_block(in_channels, out_channels, stride)
    x = torch.randn(8, in_channels, 6, 6)
    torch.manual_seed(0)
    y = block(x)
    a, b, s = seen["branch1"], seen["branch2"], seen["shortcut"]
    # y - s = b + alpha (a - b): alpha per image by least squares, and the fit is exact.
    d, r = (a - b).detach().flatten(1), (y - s - b).detach().flatten(1)
    alpha = (d * r).sum(1) / d.square().sum(1)
    torch.testing.assert_close(
        y - s, alpha.view(-1, 1, 1, 1) * a + (1 - alpha.view(-1, 1, 1, 1)) * b
    )
    assert ((alpha >= 0) & (alpha <= 1)).all() and alpha.std() > 0.05  # one draw per image
    g = torch.randn(y.shape)
    (y * g).sum().backward()
    assert a.grad is not None and b.grad is not None
    beta = _per_image(a.grad / g)
    torch.testing.assert_close(b.grad, (1 - beta).view(-1, 1, 1, 1) * g)
    assert ((beta >= 0) & (beta <= 1)).all() and beta.std() > 0.05
    assert (beta - alpha).abs().min() > 1e-4  # an independent draw, not alpha again

    y2 = block(x)
    assert not torch.allclose(y, y2)  # a fresh alpha at every forward
    torch.manual_seed(0)
    torch.testing.assert_close(block(x), y)  # drawn from torch's generator: seeds repeat it


def _bn(x: torch.Tensor, w: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.batch_norm(
        x, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"], w[f"{prefix}.weight"],
        w[f"{prefix}.bias"],
    )  # fmt: skip


def _branch(x: torch.Tensor, w: dict[str, torch.Tensor], name: str, stride: int) -> torch.Tensor:
    h = F.conv2d(F.relu(x), w[f"{name}.1.weight"], stride=stride, padding=1)
    h = F.relu(_bn(h, w, f"{name}.2"))
    return _bn(F.conv2d(h, w[f"{name}.4.weight"], padding=1), w, f"{name}.5")


@pytest.mark.parametrize(("in_channels", "out_channels", "stride"), [(8, 8, 1), (6, 8, 2)])
def test_eval_adds_the_mean_of_the_branches_to_the_shortcut(
    in_channels: int, out_channels: int, stride: int
) -> None:
    params = {"out_channels": out_channels, "stride": stride}
    block = randomize(build("shake_shake", (in_channels, 9, 9), **params)).eval()
    w = block.state_dict()
    x = torch.randn(3, in_channels, 9, 9)
    if stride == 1 and in_channels == out_channels:
        shortcut = x
    else:  # ReLU, two strided 1x1 paths (the second on the input moved one pixel right, down)
        h = F.relu(x)
        moved = torch.zeros_like(h)
        moved[:, :, 1:, 1:] = h[:, :, :-1, :-1]
        paths = [
            F.conv2d(inp[:, :, ::stride, ::stride], w[f"shortcut.conv{i}.weight"])
            for i, inp in ((1, h), (2, moved))
        ]
        shortcut = _bn(torch.cat(paths, 1), w, "shortcut.bn")
    expected = shortcut + 0.5 * (
        _branch(x, w, "branch1", stride) + _branch(x, w, "branch2", stride)
    )
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)
        torch.testing.assert_close(block(x), block(x))


def test_the_mix_is_one_opaque_node_to_fx() -> None:
    block = build("shake_shake", (4, 6, 6), out_channels=4).eval()
    graph = torch.fx.symbolic_trace(block).graph
    assert [n for n in graph.nodes if n.op == "call_function" and n.target is shake]


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(ShapeError, match="must be even") as err:
        block_spec("shake_shake", out_channels=15).output_shape((8, 8, 8))
    assert err.value.field == "out_channels"
    with pytest.raises(ShapeError, match="must be even"):
        block_spec("shake_shake", out_channels=7, stride=2).output_shape((7, 8, 8))
    assert block_spec("shake_shake", out_channels=7).output_shape((7, 5, 5)) == (7, 5, 5)
    with pytest.raises(ShapeError, match="feature map"):
        block_spec("shake_shake", out_channels=8).output_shape((8,))


def test_a_shape_error_in_a_spec_is_located() -> None:
    spec = {
        "name": "odd",
        "input": [3, 16, 16],
        "layers": [{"conv2d": {"out_channels": 16, "kernel_size": 3}}, {"shake_shake": 15}],
    }
    with pytest.raises(SpecError, match="must be even") as err:
        nasblocks.spec.plan(nasblocks.load_spec(spec))
    assert err.value.path[:2] == ("layers", 1)


def _block_params(cin: int, k: int) -> int:
    branch = cin * k * 9 + 2 * k + k * k * 9 + 2 * k  # conv, BN, conv, BN (no biases)
    shortcut = 2 * cin * (k // 2) + 2 * k if cin != k else 0  # two 1x1 convs to k / 2, BN
    return 2 * branch + shortcut


def test_shake_resnet26_2x32d_is_the_papers_network() -> None:
    expected = 3 * 16 * 9 + 2 * 16  # conv1 3x3 (no bias), bn1
    cin = 16
    for k in (32, 64, 128):
        expected += _block_params(cin, k) + 3 * _block_params(k, k)
        cin = k
    expected += 128 * 10 + 10
    with torch.device("meta"):
        model = nasblocks.build("shake_resnet26_2x32d")
    assert sum(p.numel() for p in model.parameters()) == expected == 2_923_162  # paper: 2.9M
    summary = nasblocks.summary("shake_resnet26_2x32d")
    assert summary.output_shape == (10,)
    shapes = {r.name: r.out_shape for r in summary.rows}
    assert shapes["layer1"] == (32, 32, 32) and shapes["layer3"] == (128, 8, 8)
    blocks = [m for m in model.modules() if type(m).__name__ == "ShakeShakeBlock"]
    assert len(blocks) == 12  # 26 = 2 + 12 blocks x 2 convs per branch
    projecting = [type(b.shortcut).__name__ == "ShakeShortcut" for b in blocks]
    assert projecting == [True, False, False, False] * 3  # 16 -> 32, 32 -> 64, 64 -> 128
    assert isinstance(model.relu, torch.nn.ReLU)  # before the pool: blocks end in a BN sum
