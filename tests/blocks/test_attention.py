"""Attention blocks: se, sk, sk_unit, cbam against functional re-expressions of the references.

The references (seed 004's SEBlock / SKConv / SKUnit, CBAM as seed 002 describes it) are
rewritten here with ``torch.nn.functional`` from the block's own weights, so a wrong layer
order, pooling, softmax axis or branch layout in the modules shows up as a mismatch.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from block_helpers import assert_constructor_mirrors_spec
from torch import nn

from nasblocks.errors import ShapeError
from nasblocks.modules import attention as mods
from nasblocks.registry import block_spec, create_block, get_block

KINDS = ("se", "sk", "sk_unit", "cbam")


def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so eval mode is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return module.eval()


def bn(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[prefix + "running_mean"],
        sd[prefix + "running_var"],
        sd[prefix + "weight"],
        sd[prefix + "bias"],
        training=False,
        eps=1e-5,
    )


# -- functional references ---------------------------------------------------------------


def se_ref(x: torch.Tensor, sd: dict) -> torch.Tensor:
    """Seed 004 SEBlock: x * sigmoid(W2 relu(W1 mean_hw(x)))."""
    s = x.mean(dim=(2, 3))
    w = torch.sigmoid(F.relu(s @ sd["fc.0.weight"].T) @ sd["fc.2.weight"].T)
    return x * w.view(x.size(0), x.size(1), 1, 1)


def sk_ref(
    x: torch.Tensor, sd: dict, stride: int, branches: int, p: str = "", norm=bn
) -> torch.Tensor:
    """Seed 004 SKConv, step by step: Python sum of branches, view/softmax/split/sum."""
    b, c = x.size(0), x.size(1)
    split = []
    for i in range(branches):
        y = F.conv2d(x, sd[f"{p}conv1.{i}.0.weight"], None, stride, 1 + i, 1 + i)
        split.append(F.relu(norm(y, sd, f"{p}conv1.{i}.1.")))
    feats = sum(split)
    pooled = feats.mean(dim=(2, 3), keepdim=True)
    z = F.relu(F.conv2d(pooled, sd[p + "att.1.weight"], sd[p + "att.1.bias"]))
    att = F.conv2d(z, sd[p + "att.3.weight"], sd[p + "att.3.bias"])
    att = F.softmax(att.view(b, branches, c), dim=1).view(b, -1, 1, 1)
    return sum(a * s for a, s in zip(torch.split(att, c, dim=1), split, strict=True))


def sk_unit_ref(x: torch.Tensor, sd: dict, stride: int, branches: int) -> torch.Tensor:
    """Seed 004 SKUnit: relu(shortcut(x) + conv3(conv2(conv1(x))))."""
    out = F.relu(bn(F.conv2d(x, sd["conv1.0.weight"]), sd, "conv1.1."))
    out = F.relu(bn(sk_ref(out, sd, stride, branches, "conv2.0."), sd, "conv2.1."))
    out = bn(F.conv2d(out, sd["conv3.0.weight"]), sd, "conv3.1.")
    short = x
    if "shortcut.0.weight" in sd:
        short = bn(F.conv2d(x, sd["shortcut.0.weight"], stride=stride), sd, "shortcut.1.")
    return F.relu(short + out)


def cbam_ref(x: torch.Tensor, sd: dict, kernel_size: int) -> torch.Tensor:
    """CBAM: shared bias-free MLP on avg and max descriptors, then mean/max -> kxk conv."""
    w1, w2 = sd["channel_attention.fc.0.weight"], sd["channel_attention.fc.2.weight"]

    def mlp(d: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.relu(F.conv2d(d, w1)), w2)

    avg, mx = x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    x = x * torch.sigmoid(mlp(avg) + mlp(mx))
    maps = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)
    conv = F.conv2d(maps, sd["spatial_attention.conv.weight"], padding=kernel_size // 2)
    return x * torch.sigmoid(conv)


# -- equality with the references ------------------------------------------------------


@pytest.mark.parametrize("channels,reduction", [(16, 4), (32, 16), (8, 8)])
def test_se_matches_seed(channels: int, reduction: int) -> None:
    torch.manual_seed(0)
    block = create_block("se", in_channels=channels, reduction=reduction).eval()
    x = torch.randn(2, channels, 5, 6)
    sd = block.state_dict()
    assert set(sd) == {"fc.0.weight", "fc.2.weight"}  # senet.pytorch SELayer / seed SEBlock
    assert sd["fc.0.weight"].shape == (channels // reduction, channels)
    torch.testing.assert_close(block(x), se_ref(x, sd))


def test_se_shorthand_default_reduction() -> None:
    assert block_spec("se").reduction == 16
    assert get_block("se").shorthand == "reduction"


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("branches", [2, 3])
def test_sk_matches_seed(stride: int, branches: int) -> None:
    torch.manual_seed(1)
    block = create_block("sk", in_channels=8, stride=stride, branches=branches, reduction=2)
    randomize_bn(block)
    x = torch.randn(2, 8, 9, 9)
    out = block(x)
    assert out.shape == (2, 8, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    torch.testing.assert_close(out, sk_ref(x, block.state_dict(), stride, branches))


def test_sk_state_dict_keys_follow_seed() -> None:
    block = create_block("sk", in_channels=8)  # seed defaults: M=2, reduction=4
    bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {"att.1.weight", "att.1.bias", "att.3.weight", "att.3.bias"}
    for i in range(2):
        expected |= {f"conv1.{i}.0.weight"} | {f"conv1.{i}.1.{k}" for k in bn_keys}
    sd = block.state_dict()
    assert set(sd) == expected
    assert sd["conv1.1.0.weight"].shape == (8, 8, 3, 3)
    assert block.conv1[1][0].dilation == (2, 2) and block.conv1[1][0].padding == (2, 2)
    assert sd["att.1.weight"].shape == (2, 8, 1, 1) and sd["att.3.weight"].shape == (16, 2, 1, 1)


def test_sk_in_train_mode_uses_batch_statistics() -> None:
    torch.manual_seed(2)
    block = create_block("sk", in_channels=8, reduction=2).train()
    x = torch.randn(4, 8, 6, 6)
    sd = {k: v.clone() for k, v in block.state_dict().items()}

    def batch_bn(y: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
        return F.batch_norm(y, None, None, sd[prefix + "weight"], sd[prefix + "bias"], True)

    torch.testing.assert_close(block(x), sk_ref(x, sd, 1, 2, norm=batch_bn))


@pytest.mark.parametrize(
    "in_channels,out_channels,mid,stride,params",
    [
        # in == out == 16: mid 8, stride 1, identity shortcut.
        #   conv1 16*8 + BN 2*8 = 144
        #   SKConv(8): 2 branches * (8*8*9 + 2*8) = 1184; att 8*2+2 + 2*16+16 = 66 -> 1250
        #   conv2 BN 2*8 = 16; conv3 8*16 + 2*16 = 160  => 144 + 1250 + 16 + 160 = 1570
        (16, 16, 8, 1, 1570),
        # 16 -> 32: mid 16, stride 2, projection shortcut.
        #   conv1 16*16 + 2*16 = 288
        #   SKConv(16): 2 * (16*16*9 + 2*16) = 4672; att 16*4+4 + 4*32+32 = 228 -> 4900
        #   conv2 BN 32; conv3 16*32 + 2*32 = 576; shortcut 16*32 + 2*32 = 576
        #   => 288 + 4900 + 32 + 576 + 576 = 6372
        (16, 32, 16, 2, 6372),
    ],
)
def test_sk_unit_matches_seed(in_channels, out_channels, mid, stride, params) -> None:
    torch.manual_seed(3)
    spec = block_spec("sk_unit", out_channels=out_channels)
    block = randomize_bn(spec.build(in_channels))
    assert sum(p.numel() for p in block.parameters()) == params
    assert block.conv1[0].out_channels == mid
    assert block.conv2[0].conv1[0][0].stride == (stride, stride)
    assert (len(block.shortcut) == 0) == (in_channels == out_channels)
    x = torch.randn(2, in_channels, 8, 8)
    out = block(x)
    size = 8 // stride
    assert out.shape == (2, out_channels, size, size)
    assert spec.output_shape((in_channels, 8, 8)) == (out_channels, size, size)
    torch.testing.assert_close(out, sk_unit_ref(x, block.state_dict(), stride, 2))


def test_sk_unit_overrides_project_when_shape_changes() -> None:
    torch.manual_seed(4)
    spec = block_spec("sk_unit", out_channels=8, mid_channels=4, stride=2, branches=3)
    block = randomize_bn(spec.build(8))
    assert len(block.shortcut) == 2  # same channels, but the stride forces a projection
    assert len(block.conv2[0].conv1) == 3
    x = torch.randn(2, 8, 7, 7)
    out = block(x)
    assert out.shape == (2, *spec.output_shape((8, 7, 7)))
    assert out.shape == (2, 8, 4, 4)
    torch.testing.assert_close(out, sk_unit_ref(x, block.state_dict(), 2, 3))


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_cbam_matches_reference(kernel_size: int) -> None:
    torch.manual_seed(5)
    block = create_block("cbam", in_channels=16, reduction=4, kernel_size=kernel_size).eval()
    sd = block.state_dict()
    assert set(sd) == {
        "channel_attention.fc.0.weight",
        "channel_attention.fc.2.weight",
        "spatial_attention.conv.weight",
    }
    assert sd["spatial_attention.conv.weight"].shape == (1, 2, kernel_size, kernel_size)
    x = torch.randn(2, 16, 9, 8)
    torch.testing.assert_close(block(x), cbam_ref(x, sd, kernel_size))


def test_cbam_rejects_other_kernels() -> None:
    with pytest.raises(ValueError):
        block_spec("cbam", kernel_size=5)


# -- shape contracts and errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "kind,params,in_shape,field",
    [
        ("se", {"reduction": 16}, (8, 4, 4), "reduction"),
        ("sk", {"reduction": 4}, (3, 4, 4), "reduction"),
        ("cbam", {"reduction": 16}, (15, 4, 4), "reduction"),
        ("sk_unit", {"out_channels": 1}, (1, 4, 4), "mid_channels"),  # mid = 1 // 2 = 0
        ("sk_unit", {"out_channels": 6}, (6, 4, 4), "reduction"),  # mid 3 // 4 = 0
        ("sk_unit", {"out_channels": 8, "mid_channels": 2}, (4, 4, 4), "reduction"),
    ],
)
def test_shape_errors_name_the_field(kind, params, in_shape, field) -> None:
    with pytest.raises(ShapeError) as err:
        block_spec(kind, **params).output_shape(in_shape)
    assert err.value.field == field


@pytest.mark.parametrize("kind", KINDS)
def test_flat_vector_is_rejected(kind: str) -> None:
    params = {"out_channels": 16} if kind == "sk_unit" else {}
    with pytest.raises(ShapeError, match="feature map"):
        block_spec(kind, **params).output_shape((64,))


@pytest.mark.parametrize("kind", KINDS)
def test_constructor_matches_fields(kind: str) -> None:
    assert_constructor_mirrors_spec(kind)


def test_residual_helper_signatures() -> None:
    """The residual family builds these parts positionally/by keyword; keep them stable."""
    assert mods.SqueezeExcite(32, reduction=8).fc[0].out_features == 4
    assert mods.CBAM(32, reduction=8, kernel_size=3).spatial_attention.conv.kernel_size == (3, 3)
    sk = mods.SKConv(8, stride=2, branches=3, reduction=2)
    assert sk(torch.randn(1, 8, 6, 6)).shape == (1, 8, 3, 3)


# -- conformance on the declared examples ----------------------------------------------


@pytest.mark.parametrize(
    "kind,params,in_shape",
    [(k, p, s) for k in KINDS for p, s in get_block(k).examples],
)
def test_examples_run_trace_and_keep_their_contract(kind, params, in_shape) -> None:
    torch.manual_seed(6)
    spec = block_spec(kind, **params)
    block = spec.build_for(in_shape)
    x = torch.randn(2, *in_shape, requires_grad=True)
    out = block(x)
    assert tuple(out.shape[1:]) == spec.output_shape(in_shape)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in block.parameters())
    traced = torch.fx.symbolic_trace(block.eval())
    with torch.no_grad():
        torch.testing.assert_close(traced(x), block(x))
