"""The convolution family: shapes, equality with functional references, errors, fx tracing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from block_helpers import assert_constructor_mirrors_spec
from pydantic import ValidationError
from torchvision.models.googlenet import BasicConv2d
from torchvision.models.shufflenetv2 import channel_shuffle as tv_channel_shuffle
from torchvision.ops import deform_conv2d

from nasblocks.errors import ShapeError
from nasblocks.registry import block_spec

FAMILY = (
    "separable",
    "spatial_separable",
    "shuffle_conv",
    "channel_shuffle",
    "deform_conv",
    "conv_transpose",
    "upsample",
    "depthwise",
)


def build(kind: str, in_shape: tuple[int, ...], **params: Any):
    """Spec, module (eval mode) and the predicted output shape for one block."""
    spec = block_spec(kind, **params)
    return spec, spec.build_for(in_shape).eval(), spec.output_shape(in_shape)


def run(module: torch.nn.Module, in_shape: tuple[int, ...], batch: int = 2):
    torch.manual_seed(0)
    x = torch.randn(batch, *in_shape)
    with torch.no_grad():
        return x, module(x)


def shape_error(kind: str, in_shape: tuple[int, ...], **params: Any) -> ShapeError:
    with pytest.raises(ShapeError) as info:
        block_spec(kind, **params).output_shape(in_shape)
    return info.value


# -- every block: constructor matches spec, predicted shapes match real ones ---------------


@pytest.mark.parametrize("kind", FAMILY)
def test_module_signature_matches_spec(kind: str) -> None:
    assert_constructor_mirrors_spec(kind)


SHAPE_CASES = [
    ("separable", {"out_channels": 16}, (8, 16, 16)),
    ("separable", {"out_channels": 8, "stride": 2}, (4, 15, 15)),
    ("separable", {"out_channels": 8, "kernel_size": [3, 5], "stride": [1, 2]}, (4, 9, 10)),
    ("separable", {"out_channels": 8, "kernel_size": 5, "dilation": 3}, (4, 16, 16)),
    ("spatial_separable", {"out_channels": 8}, (4, 12, 12)),
    ("spatial_separable", {"out_channels": 8, "kernel_size": 3, "stride": 2}, (4, 9, 10)),
    ("spatial_separable", {"out_channels": 8, "kernel_size": 4}, (4, 8, 8)),  # even: shrinks
    ("shuffle_conv", {"out_channels": 12, "groups": 3}, (6, 7, 7)),
    ("shuffle_conv", {"out_channels": 8, "groups": 2, "kernel_size": 3, "stride": 2}, (4, 9, 9)),
    ("channel_shuffle", {"groups": 4}, (8, 3, 5)),
    ("deform_conv", {"out_channels": 8}, (4, 8, 8)),
    ("deform_conv", {"out_channels": 8, "stride": 2, "kernel_size": 5}, (4, 11, 11)),
    ("deform_conv", {"out_channels": 4, "padding": 0, "dilation": [2, 1]}, (4, 9, 8)),
    ("conv_transpose", {"out_channels": 8}, (4, 5, 7)),
    (
        "conv_transpose",
        {"out_channels": 8, "kernel_size": 4, "stride": 2, "padding": 1},
        (4, 5, 5),
    ),
    (
        "conv_transpose",
        {"out_channels": 4, "kernel_size": 3, "stride": 3, "output_padding": [2, 0]},
        (4, 3, 4),
    ),
    (
        "conv_transpose",
        {"out_channels": 4, "kernel_size": [3, 2], "stride": 1, "dilation": 2},
        (4, 4, 4),
    ),
    ("upsample", {"scale_factor": 2}, (4, 5, 6)),
    ("upsample", {"scale_factor": 1.5, "mode": "bilinear"}, (4, 5, 7)),
    ("upsample", {"scale_factor": 0.5, "mode": "bicubic", "align_corners": False}, (4, 9, 8)),
    ("upsample", {"scale_factor": 0.3}, (4, 10, 7)),
    ("depthwise", {}, (8, 8, 8)),
    ("depthwise", {"channel_multiplier": 3, "stride": 2}, (4, 9, 9)),
    ("depthwise", {"kernel_size": 5, "padding": 0}, (4, 9, 9)),
]


@pytest.mark.parametrize(("kind", "params", "in_shape"), SHAPE_CASES)
def test_predicted_shape_is_real(kind: str, params: dict, in_shape: tuple[int, ...]) -> None:
    _, module, predicted = build(kind, in_shape, **params)
    _, y = run(module, in_shape)
    assert tuple(y.shape[1:]) == predicted


# -- conv (core) behaviours the family relies on -------------------------------------------


def test_conv_dilation_keeps_size_and_matches_functional() -> None:
    _, m, predicted = build(
        "conv", (4, 9, 9), out_channels=6, dilation=2, norm="none", activation="none"
    )
    x, y = run(m, (4, 9, 9))
    assert predicted == (6, 9, 9)
    ref = F.conv2d(x, m.conv.weight, m.conv.bias, padding=2, dilation=2)
    torch.testing.assert_close(y, ref)


def test_conv_non_square_kernel_keeps_size() -> None:
    _, m, predicted = build("conv", (4, 9, 11), out_channels=6, kernel_size=[1, 7])
    _, y = run(m, (4, 9, 11))
    assert predicted == tuple(y.shape[1:]) == (6, 9, 11)
    assert m.conv.kernel_size == (1, 7)


def test_conv_groups_not_dividing_channels() -> None:
    assert shape_error("conv", (6, 8, 8), out_channels=8, groups=4).field == "groups"
    assert shape_error("conv", (8, 8, 8), out_channels=6, groups=4).field == "groups"


@pytest.mark.parametrize(("size", "half"), [(16, 8), (15, 8)])
def test_conv_stride_two_halves(size: int, half: int) -> None:
    _, m, predicted = build("conv", (4, size, size), out_channels=4, stride=2)
    _, y = run(m, (4, size, size))
    assert predicted == tuple(y.shape[1:]) == (4, half, half)


# -- separable ------------------------------------------------------------------------------


@pytest.mark.parametrize("dw_act", [True, False])
def test_separable_matches_depthwise_then_pointwise(dw_act: bool) -> None:
    _, m, _ = build(
        "separable",
        (4, 9, 9),
        out_channels=6,
        kernel_size=5,
        stride=2,
        dilation=2,
        norm="none",
        activation="relu",
        depthwise_activation=dw_act,
    )
    assert m.depthwise.conv.groups == 4 and m.pointwise.conv.kernel_size == (1, 1)
    x, y = run(m, (4, 9, 9))
    dw, pw = m.depthwise.conv, m.pointwise.conv
    h = F.conv2d(x, dw.weight, dw.bias, stride=2, padding=4, dilation=2, groups=4)
    h = F.relu(h) if dw_act else h
    torch.testing.assert_close(y, F.relu(F.conv2d(h, pw.weight, pw.bias)))


# -- spatial_separable -------------------------------------------------------------------


def test_spatial_separable_loads_inception_basic_convs() -> None:
    """Inception-v3's 1x7 / 7x1 pair (BasicConv2d, eps 1e-3) loads into conv1 / conv2."""
    torch.manual_seed(1)
    tv1 = BasicConv2d(4, 6, kernel_size=(1, 7), padding=(0, 3)).eval()
    tv2 = BasicConv2d(6, 8, kernel_size=(7, 1), padding=(3, 0)).eval()
    for bn in (tv1.bn, tv2.bn):  # non-trivial running statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    _, m, predicted = build(
        "spatial_separable",
        (4, 9, 9),
        out_channels=8,
        kernel_size=7,
        mid_channels=6,
        norm_eps=1e-3,
    )
    m.conv1.load_state_dict(tv1.state_dict(), strict=True)
    m.conv2.load_state_dict(tv2.state_dict(), strict=True)
    x, y = run(m, (4, 9, 9))
    with torch.no_grad():
        torch.testing.assert_close(y, tv2(tv1(x)))
    assert predicted == (8, 9, 9)


def test_spatial_separable_mid_channels_default_and_strides() -> None:
    _, m, _ = build("spatial_separable", (4, 9, 9), out_channels=8, kernel_size=3, stride=[2, 3])
    assert m.conv1.conv.out_channels == 8
    assert m.conv1.conv.stride == (1, 3) and m.conv2.conv.stride == (2, 1)


# -- channel_shuffle / shuffle_conv ----------------------------------------------------------


@pytest.mark.parametrize(("channels", "groups"), [(8, 2), (12, 3), (12, 4), (6, 6)])
def test_channel_shuffle_matches_torchvision(channels: int, groups: int) -> None:
    _, m, _ = build("channel_shuffle", (channels, 3, 4), groups=groups)
    x, y = run(m, (channels, 3, 4))
    torch.testing.assert_close(y, tv_channel_shuffle(x, groups), rtol=0, atol=0)
    assert not torch.equal(y, x) or groups in (1, channels)


def test_channel_shuffle_needs_divisible_channels() -> None:
    assert shape_error("channel_shuffle", (10, 4, 4), groups=4).field == "groups"


def test_shuffle_conv_is_grouped_conv_then_shuffle() -> None:
    _, m, _ = build(
        "shuffle_conv", (6, 7, 7), out_channels=12, groups=3, kernel_size=3, norm="none"
    )
    x, y = run(m, (6, 7, 7))
    ref = F.relu(F.conv2d(x, m.conv.conv.weight, m.conv.conv.bias, padding=1, groups=3))
    torch.testing.assert_close(y, tv_channel_shuffle(ref, 3))


@pytest.mark.parametrize(("in_c", "out_c"), [(6, 8), (8, 6)])
def test_shuffle_conv_groups_must_divide(in_c: int, out_c: int) -> None:
    err = shape_error("shuffle_conv", (in_c, 8, 8), out_channels=out_c, groups=4)
    assert err.field == "groups"


def test_shuffle_conv_requires_groups() -> None:
    with pytest.raises(ValidationError):
        block_spec("shuffle_conv", out_channels=8)


# -- deform_conv ---------------------------------------------------------------------------

PLAIN = {"norm": "none", "activation": "none"}


@pytest.mark.parametrize(
    "params",
    [
        {"out_channels": 6},
        {"out_channels": 6, "stride": 2, "dilation": 2, "groups": 2, "offset_groups": 2},
        {"out_channels": 4, "kernel_size": [3, 5], "padding": 0, "bias": True},
    ],
)
def test_deform_conv_v1_starts_as_plain_conv(params: dict) -> None:
    spec, m, predicted = build("deform_conv", (4, 9, 9), **params, **PLAIN)
    x, y = run(m, (4, 9, 9))
    c = m.conv
    ref = F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
    torch.testing.assert_close(y, ref)
    assert tuple(y.shape[1:]) == predicted
    kh, kw = c.kernel_size
    assert m.conv_offset.out_channels == 2 * spec.offset_groups * kh * kw


def test_deform_conv_v2_mask_is_half_at_init() -> None:
    _, m, _ = build("deform_conv", (4, 9, 9), out_channels=6, modulated=True, **PLAIN)
    x, y = run(m, (4, 9, 9))
    c = m.conv
    with torch.no_grad():
        mask = m.conv_mask(x)
        offset = torch.zeros(2, 18, 9, 9)
        ref = deform_conv2d(x, offset, c.weight, None, padding=(1, 1), mask=mask)
    assert mask.shape == (2, 9, 9, 9)
    torch.testing.assert_close(mask, torch.full_like(mask, 0.5))
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(y, 0.5 * F.conv2d(x, c.weight, padding=1))


def test_deform_conv_uses_learned_offsets_and_masks() -> None:
    _, m, _ = build("deform_conv", (4, 8, 8), out_channels=4, modulated=True, **PLAIN)
    with torch.no_grad():
        m.conv_offset.bias.fill_(0.4)
        m.conv_mask[0].bias.fill_(1.0)
    x, y = run(m, (4, 8, 8))
    offset = torch.full((2, 18, 8, 8), 0.4)
    mask = torch.full((2, 9, 8, 8), torch.sigmoid(torch.tensor(1.0)).item())
    ref = deform_conv2d(x, offset, m.conv.weight, None, padding=(1, 1), mask=mask)
    torch.testing.assert_close(y, ref)
    assert not torch.allclose(y, F.conv2d(x, m.conv.weight, padding=1))


def test_deform_conv_offsets_receive_gradients() -> None:
    _, m, _ = build("deform_conv", (4, 8, 8), out_channels=4, modulated=True)
    m.train()
    m(torch.randn(2, 4, 8, 8)).square().sum().backward()
    assert m.conv_offset.weight.grad.abs().sum() > 0
    assert m.conv_mask[0].weight.grad.abs().sum() > 0


def test_deform_conv_offsets_stay_zero_after_init_scheme() -> None:
    from nasblocks.init import apply_init

    _, m, _ = build("deform_conv", (4, 8, 8), out_channels=4, modulated=True)
    apply_init(m, "kaiming")
    for conv in (m.conv_offset, m.conv_mask[0]):
        assert not conv.weight.any() and not conv.bias.any()
    assert m.conv.weight.any()


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_conv_fx_traces(modulated: bool) -> None:
    _, m, _ = build("deform_conv", (4, 8, 8), out_channels=4, modulated=modulated)
    with torch.no_grad():
        m.conv_offset.bias.fill_(0.3)
    graph = torch.fx.symbolic_trace(m)
    targets = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert any(getattr(t, "__name__", "") == "_deform_conv2d" for t in targets)
    x, y = run(m, (4, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(graph(x), y)


def test_deform_conv_shape_errors() -> None:
    assert shape_error("deform_conv", (6, 8, 8), out_channels=8, groups=4).field == "groups"
    err = shape_error("deform_conv", (6, 8, 8), out_channels=8, offset_groups=4)
    assert err.field == "offset_groups"
    err = shape_error("deform_conv", (4, 2, 2), out_channels=8, kernel_size=5, padding=0)
    assert err.field == "kernel_size"


# -- conv_transpose ------------------------------------------------------------------------


def test_conv_transpose_matches_functional_and_formula() -> None:
    params = {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "dilation": 2}
    _, m, predicted = build("conv_transpose", (4, 5, 6), out_channels=6, groups=2, **params)
    x, y = run(m, (4, 5, 6))
    c = m.conv
    ref = F.conv_transpose2d(x, c.weight, c.bias, 2, 1, 1, groups=2, dilation=2)
    torch.testing.assert_close(y, ref)
    # (H - 1) * s - 2p + d * (k - 1) + output_padding + 1
    assert predicted == (6, (5 - 1) * 2 - 2 + 2 * 2 + 1 + 1, (6 - 1) * 2 - 2 + 2 * 2 + 1 + 1)


def test_conv_transpose_default_doubles_and_bias_follows_norm() -> None:
    _, m, predicted = build("conv_transpose", (4, 5, 7), out_channels=8)
    assert predicted == (8, 10, 14) and m.conv.bias is not None
    _, m, _ = build("conv_transpose", (4, 5, 7), out_channels=8, norm="batch")
    assert m.conv.bias is None and isinstance(m.bn, torch.nn.BatchNorm2d)


def test_conv_transpose_rejects_bad_output_padding() -> None:
    with pytest.raises(ValidationError, match="output_padding"):
        block_spec("conv_transpose", out_channels=4, stride=2, output_padding=2)
    with pytest.raises(ValidationError, match="output_padding"):
        block_spec("conv_transpose", out_channels=4, stride=[2, 1], output_padding=[1, 1])
    block_spec("conv_transpose", out_channels=4, stride=1, dilation=3, output_padding=2)


def test_conv_transpose_shape_errors() -> None:
    err = shape_error("conv_transpose", (4, 1, 1), out_channels=4, kernel_size=2, padding=2)
    assert err.field == "padding"
    assert shape_error("conv_transpose", (6, 4, 4), out_channels=4, groups=4).field == "groups"


# -- upsample --------------------------------------------------------------------------------


def test_upsample_rejects_align_corners_with_nearest() -> None:
    with pytest.raises(ValidationError, match="align_corners"):
        block_spec("upsample", scale_factor=2, align_corners=True)
    block_spec("upsample", scale_factor=2, mode="bilinear", align_corners=True)


def test_upsample_bilinear_matches_interpolate() -> None:
    params = {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True}
    _, m, _ = build("upsample", (3, 5, 6), **params)
    x, y = run(m, (3, 5, 6))
    torch.testing.assert_close(y, F.interpolate(x, **params))


def test_upsample_collapse_and_shorthand_type() -> None:
    assert shape_error("upsample", (4, 3, 8), scale_factor=0.25).field == "scale_factor"
    assert block_spec("upsample", scale_factor=3).output_shape((2, 5, 4)) == (2, 15, 12)


# -- depthwise -------------------------------------------------------------------------------


def test_depthwise_matches_grouped_functional_conv() -> None:
    _, m, predicted = build(
        "depthwise", (4, 9, 9), channel_multiplier=2, kernel_size=5, stride=2, **PLAIN
    )
    assert m.conv.groups == 4 and predicted == (8, 5, 5)
    x, y = run(m, (4, 9, 9))
    ref = F.conv2d(x, m.conv.weight, m.conv.bias, stride=2, padding=2, groups=4)
    torch.testing.assert_close(y, ref)
