"""MobileNetV2's inverted residual and conv_bn_act against torchvision, key for key."""

from __future__ import annotations

import pytest
import torch
from block_helpers import assert_same, build, randomize
from torch import nn
from torchvision.models import mobilenetv2
from torchvision.ops.misc import Conv2dNormActivation

from nasblocks.errors import ShapeError
from nasblocks.registry import block_spec


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "stride", "expand_ratio"),
    [(8, 8, 1, 6), (8, 16, 2, 6), (8, 8, 1, 1), (16, 8, 2, 1), (8, 12, 1, 6), (8, 8, 2, 6)],
)
def test_inverted_residual_loads_torchvision(in_channels, out_channels, stride, expand_ratio):
    theirs = mobilenetv2.InvertedResidual(in_channels, out_channels, stride, expand_ratio)
    ours = build(
        "inverted_residual",
        (in_channels, 9, 9),
        out_channels=out_channels,
        stride=stride,
        expand_ratio=expand_ratio,
    )
    assert_same(ours, theirs, (in_channels, 9, 9))
    assert ours.use_res_connect == theirs.use_res_connect
    # [expand,] depthwise, project conv, project norm; the first two nest conv/norm/act.
    assert len(ours.conv) == (3 if expand_ratio == 1 else 4)
    assert {"conv.0.0.weight", "conv.0.1.running_mean"} <= set(ours.state_dict())


def test_inverted_residual_adds_its_input_only_when_shapes_allow() -> None:
    x = torch.randn(2, 8, 6, 6)
    kept = randomize(build("inverted_residual", (8, 6, 6), out_channels=8)).eval()
    changed = randomize(build("inverted_residual", (8, 6, 6), out_channels=16)).eval()
    with torch.no_grad():
        torch.testing.assert_close(kept(x) - kept.conv(x), x)
        torch.testing.assert_close(changed(x), changed.conv(x))


def test_inverted_residual_options() -> None:
    block = build(
        "inverted_residual",
        (8, 5, 5),
        out_channels=12,
        expand_ratio=2.5,
        activation="hardswish",
        norm_eps=1e-3,
    )
    assert block.conv[0][0].out_channels == 20  # round(8 * 2.5)
    assert isinstance(block.conv[0][2], nn.Hardswish) and isinstance(
        block.conv[1][2], nn.Hardswish
    )
    assert block.conv[1][0].groups == 20  # depthwise
    assert all(m.eps == 1e-3 for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    # The projection is linear: no activation after the last norm.
    assert isinstance(block.conv[-1], nn.BatchNorm2d) and len(block.conv) == 4
    assert block_spec("inverted_residual", out_channels=4, stride=2).output_shape((8, 7, 6)) == (
        4,
        4,
        3,
    )
    with pytest.raises(ShapeError):
        block_spec("inverted_residual", out_channels=4).output_shape((8,))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"out_channels": 8, "stride": 2}, {"stride": 2}),
        (
            {"out_channels": 8, "kernel_size": 1, "activation": "relu6"},
            {"kernel_size": 1, "activation_layer": nn.ReLU6},
        ),  # fmt: skip
        ({"out_channels": 8, "groups": 4, "dilation": 2}, {"groups": 4, "dilation": 2}),
        ({"out_channels": 8, "depthwise": True}, {"groups": 8}),
        ({"out_channels": 8, "kernel_size": [1, 3]}, {"kernel_size": (1, 3)}),
        ({"out_channels": 8, "norm": "none"}, {"norm_layer": None}),
        (
            {"out_channels": 8, "activation": "none", "padding": 0},
            {"activation_layer": None, "padding": 0},
        ),  # fmt: skip
    ],
)
def test_conv_bn_act_loads_torchvision_conv2d_norm_activation(ours: dict, theirs: dict) -> None:
    tv = Conv2dNormActivation(8, 8, **theirs)
    block = build("conv_bn_act", (8, 9, 9), **ours)
    assert_same(block, tv, (8, 9, 9))
    assert "0.weight" in block.state_dict()


def test_conv_bn_act_module_pads_same_by_itself() -> None:
    """Built without the spec (padding omitted), the module pads like torchvision."""
    from nasblocks.modules.mobile import ConvBnAct

    for kwargs in ({"dilation": 2}, {"kernel_size": (5, 3), "dilation": (1, 2)}):
        assert_same(ConvBnAct(8, 8, **kwargs), Conv2dNormActivation(8, 8, **kwargs), (8, 9, 9))


def test_conv_bn_act_shape_errors() -> None:
    with pytest.raises(ShapeError) as err:
        block_spec("conv_bn_act", out_channels=8, groups=3).output_shape((9, 8, 8))
    assert err.value.field == "groups"
    with pytest.raises(ShapeError) as err:
        block_spec("conv_bn_act", out_channels=8, kernel_size=5, padding=0).output_shape((9, 3, 3))
    assert err.value.field == "kernel_size"
    assert block_spec("conv_bn_act", out_channels=8, kernel_size=5).output_shape((3, 5, 5)) == (
        8,
        5,
        5,
    )


def test_mobilenet_v2_features_load_torchvision() -> None:
    """A small MobileNetV2 ``features`` written with conv_bn_act and inverted_residual."""
    setting = [[1, 32, 1, 1], [6, 64, 2, 2]]  # t, c, n, s; c is scaled by width_mult
    tv = mobilenetv2.MobileNetV2(width_mult=0.25, inverted_residual_setting=setting)
    layers = [
        ("conv_bn_act", {"out_channels": 8, "stride": 2, "activation": "relu6"}),
        ("inverted_residual", {"out_channels": 8, "expand_ratio": 1}),
        ("inverted_residual", {"out_channels": 16, "stride": 2}),
        ("inverted_residual", {"out_channels": 16}),
        ("conv_bn_act", {"out_channels": 1280, "kernel_size": 1, "activation": "relu6"}),
    ]
    shape, ours = (3, 16, 16), []
    for kind, params in layers:
        spec = block_spec(kind, **params)
        ours.append(spec.build_for(shape))
        shape = spec.output_shape(shape)
    assert shape == (1280, 4, 4)
    assert_same(nn.Sequential(*ours), tv.features, (3, 16, 16))
