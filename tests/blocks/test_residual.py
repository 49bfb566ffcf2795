"""ResNet blocks and ShuffleNet units: torchvision weight compatibility, references, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from block_helpers import assert_same, build, randomize
from torch import nn
from torchvision.models import resnet, shufflenetv2

from nasblocks.errors import ShapeError
from nasblocks.init import apply_init
from nasblocks.modules.attention import SKConv
from nasblocks.modules.common import channel_shuffle
from nasblocks.registry import block_spec, create_block


def tv_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The shortcut torchvision's ``ResNet._make_layer`` gives a block."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
    )


# -- ResNet blocks against torchvision --------------------------------------------------------


@pytest.mark.parametrize(
    ("in_channels", "channels", "stride"), [(8, 8, 1), (8, 16, 2), (8, 16, 1), (16, 16, 2)]
)
def test_basic_loads_torchvision_basicblock(in_channels: int, channels: int, stride: int) -> None:
    theirs = resnet.BasicBlock(
        in_channels, channels, stride, tv_shortcut(in_channels, channels, stride)
    )
    ours = build("basic", (in_channels, 9, 9), channels=channels, stride=stride)
    assert_same(ours, theirs, (in_channels, 9, 9))


@pytest.mark.parametrize(
    ("in_channels", "channels", "stride", "groups", "width_per_group", "dilation", "first"),
    [
        (16, 4, 1, 1, 64, 1, None),  # identity shortcut
        (8, 4, 1, 1, 64, 1, None),  # channel change: 1x1 shortcut at stride 1
        (16, 8, 2, 1, 64, 1, None),  # strided (ResNet v1.5: stride in the 3x3)
        (32, 16, 2, 32, 4, 1, None),  # ResNeXt 32x4d: width 32
        (16, 4, 1, 1, 128, 1, None),  # Wide ResNet-50-2: width 8
        (16, 4, 1, 1, 64, 2, None),  # dilated block inside a dilated stage
    ],
)
def test_bottleneck_loads_torchvision_bottleneck(
    in_channels: int,
    channels: int,
    stride: int,
    groups: int,
    width_per_group: int,
    dilation: int,
    first: int | None,
) -> None:
    theirs = resnet.Bottleneck(
        in_channels,
        channels,
        stride,
        tv_shortcut(in_channels, channels * 4, stride),
        groups,
        width_per_group,
        dilation,
    )
    ours = build(
        "bottleneck",
        (in_channels, 9, 9),
        channels=channels,
        stride=stride,
        groups=groups,
        width_per_group=width_per_group,
        dilation=dilation,
        first_dilation=first,
    )
    assert_same(ours, theirs, (in_channels, 9, 9))


def test_dilated_stages_match_torchvision_resnet() -> None:
    """replace_stride_with_dilation: a stage's first block keeps the previous dilation."""
    tv = resnet.ResNet(resnet.Bottleneck, [1, 1, 2, 2], replace_stride_with_dilation=[0, 1, 1])
    blocks = [
        # layer3: stride 2 replaced by dilation 2; its first block uses the previous (1).
        dict(channels=256, dilation=2, first_dilation=1),
        dict(channels=256, dilation=2),
        # layer4: dilation 4; its first block uses layer3's 2.
        dict(channels=512, dilation=4, first_dilation=2),
        dict(channels=512, dilation=4),
    ]
    shape, ours = (512, 5, 5), []
    for params in blocks:
        spec = block_spec("bottleneck", **params)
        ours.append(spec.build_for(shape))
        shape = spec.output_shape(shape)
    assert shape == (2048, 5, 5)
    ours_net = nn.Sequential(*ours)
    theirs = nn.Sequential(*tv.layer3, *tv.layer4)
    assert_same(ours_net, theirs, (512, 5, 5))
    assert ours[0].conv2.dilation == (1, 1) and ours[2].conv2.dilation == (2, 2)
    assert ours[3].conv2.dilation == (4, 4) and ours[3].conv2.padding == (4, 4)


def test_basic_dilation_follows_timm() -> None:
    block = build("basic", (8, 8, 8), channels=8, dilation=2, first_dilation=1)
    assert block.conv1.dilation == (1, 1) and block.conv2.dilation == (2, 2)
    assert block.conv2.padding == (2, 2)
    block = build("basic", (8, 8, 8), channels=8, dilation=2)
    assert block.conv1.dilation == (2, 2)


def test_child_names_are_torchvision_names() -> None:
    keys = set(create_block("bottleneck", 8, channels=4).state_dict())
    tv_keys = set(resnet.Bottleneck(8, 4, downsample=tv_shortcut(8, 16, 1)).state_dict())
    assert keys == tv_keys
    assert "downsample.0.weight" in keys and "downsample.1.running_mean" in keys
    # No shortcut keys when the shapes allow the identity.
    assert not any(
        k.startswith("downsample") for k in create_block("basic", 8, channels=8).state_dict()
    )


def test_downsample_can_be_forced_or_refused() -> None:
    forced = build("basic", (8, 6, 6), channels=8, downsample=True)
    assert isinstance(forced.downsample, nn.Sequential)
    with pytest.raises(ShapeError) as err:
        block_spec("basic", channels=8, stride=2, downsample=False).output_shape((8, 6, 6))
    assert err.value.field == "downsample"
    # Not needed and refused: fine.
    build("basic", (8, 6, 6), channels=8, downsample=False)


@pytest.mark.parametrize(("kind", "last"), [("basic", "bn2"), ("bottleneck", "bn3")])
def test_zero_init_last_makes_the_block_start_as_identity(kind: str, last: str) -> None:
    block = create_block(kind, 16, channels=16 if kind == "basic" else 4, zero_init_last=True)
    assert torch.count_nonzero(getattr(block, last).weight) == 0
    assert torch.count_nonzero(block.bn1.weight) > 0
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(block.eval()(x), F.relu(x))
    plain = create_block(kind, 16, channels=16 if kind == "basic" else 4)
    assert torch.count_nonzero(getattr(plain, last).weight) > 0
    # The builder's init scheme sets every norm scale to one, then calls post_init.
    apply_init(block, "kaiming")
    assert torch.count_nonzero(getattr(block, last).weight) == 0
    assert torch.count_nonzero(block.bn1.weight) > 0


def test_norm_and_activation_choices() -> None:
    block = create_block(
        "bottleneck", 8, channels=4, norm="group", activation="silu", norm_eps=1e-3
    )
    assert isinstance(block.bn1, nn.GroupNorm) and isinstance(block.downsample[1], nn.GroupNorm)
    assert block.bn3.eps == 1e-3 and isinstance(block.relu, nn.SiLU)
    bare = create_block("basic", 8, channels=8, norm="none")
    assert isinstance(bare.bn1, nn.Identity) and bare.conv1.bias is not None


# -- attention variants ------------------------------------------------------------------


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def test_se_basic_equals_functional_se_resnet() -> None:
    """senet.pytorch's SEBasicBlock: relu(se(bn2(conv2(...))) + shortcut(x))."""
    block = randomize(build("basic", (8, 7, 7), channels=16, stride=2, attention="se",
                            attention_reduction=4)).eval()  # fmt: skip
    x = torch.randn(2, 8, 7, 7)
    out = F.relu(_bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    out = _bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    w1, w2 = block.se.fc[0].weight, block.se.fc[2].weight  # (4, 16), (16, 4)
    scale = torch.sigmoid(F.relu(out.mean((2, 3)) @ w1.t()) @ w2.t())  # (B, 16)
    shortcut = _bn(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    expected = F.relu(out * scale[:, :, None, None] + shortcut)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)
    assert set(block.state_dict()) >= {"se.fc.0.weight", "se.fc.2.weight"}


def test_cbam_bottleneck_sits_before_the_addition() -> None:
    block = randomize(build("bottleneck", (16, 6, 6), channels=4, attention="cbam",
                            attention_reduction=4)).eval()  # fmt: skip
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
        torch.testing.assert_close(block(x), F.relu(block.se(out) + x))
    assert any(k.startswith("se.channel_attention") for k in block.state_dict())


def test_sk_bottleneck_makes_conv2_a_strided_skconv() -> None:
    block = build("bottleneck", (16, 8, 8), channels=8, stride=2, attention="sk")
    assert isinstance(block.conv2, SKConv)
    # width 8; the fuse layer reduces by attention_reduction // 4 = 4.
    assert block.conv2.att[1].out_channels == 2
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 32, 4, 4)
    assert "conv2.conv1.1.0.weight" in block.state_dict() and "bn2.weight" in block.state_dict()
    basic = build("basic", (8, 8, 8), channels=8, stride=2, attention="sk")
    assert isinstance(basic.conv2, SKConv) and basic.conv1.stride == (2, 2)


# -- shape errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "in_shape", "field"),
    [
        ("basic", {"channels": 8, "groups": 2}, (8, 8, 8), "groups"),
        ("basic", {"channels": 8, "width_per_group": 128}, (8, 8, 8), "width_per_group"),
        ("basic", {"channels": 8, "attention": "sk", "expansion": 2}, (8, 8, 8), "expansion"),
        # torchvision's width int(channels * wpg / 64) * groups is always a multiple of
        # groups, so a grouped bottleneck fails only when that rounds to zero channels.
        (
            "bottleneck",
            {"channels": 8, "groups": 32, "width_per_group": 4},
            (8, 8, 8),
            "width_per_group",
        ),  # fmt: skip
        ("bottleneck", {"channels": 2, "attention": "se"}, (8, 8, 8), "attention_reduction"),
        ("bottleneck", {"channels": 8, "attention": "sk", "groups": 2}, (8, 8, 8), "groups"),
        ("bottleneck", {"channels": 8, "attention": "sk", "dilation": 2}, (8, 8, 8), "dilation"),
        (
            "bottleneck",
            {"channels": 8, "stride": 2, "downsample": False},
            (32, 8, 8),
            "downsample",
        ),  # fmt: skip
        ("basic", {"channels": 8}, (8,), None),
    ],
)
def test_resnet_block_shape_errors(kind, params, in_shape, field) -> None:
    with pytest.raises(ShapeError) as err:
        block_spec(kind, **params).output_shape(in_shape)
    assert err.value.field == field


def test_resnet_block_shapes() -> None:
    assert block_spec("bottleneck", channels=16, groups=32, width_per_group=4).width() == 32
    assert block_spec("bottleneck", channels=4, width_per_group=128).width() == 8
    assert block_spec("basic", channels=8, stride=2).output_shape((4, 7, 9)) == (8, 4, 5)
    assert block_spec("bottleneck", channels=8).output_shape((4, 7, 9)) == (32, 7, 9)
    assert block_spec("bottleneck", channels=8, expansion=2, stride=3).output_shape((4, 7, 9)) == (
        16,
        3,
        3,
    )


# -- ShuffleNet v2 ----------------------------------------------------------------------


@pytest.mark.parametrize(("in_channels", "out_channels", "stride"), [(16, 16, 1), (8, 24, 2)])
def test_shufflenet_v2_unit_loads_torchvision(in_channels, out_channels, stride) -> None:
    theirs = shufflenetv2.InvertedResidual(in_channels, out_channels, stride)
    ours = build("shufflenet_v2_unit", (in_channels, 9, 9), out_channels=out_channels,
                 stride=stride)  # fmt: skip
    assert_same(ours, theirs, (in_channels, 9, 9))
    has_branch1 = any(k.startswith("branch1") for k in ours.state_dict())
    assert has_branch1 == (stride == 2)


def test_shufflenet_v2_stage_loads_torchvision() -> None:
    tv = shufflenetv2.ShuffleNetV2([2, 1, 1], [8, 16, 32, 64, 128])
    shape, units = (8, 8, 8), []
    for params in ({"out_channels": 16, "stride": 2}, {"out_channels": 16}):
        spec = block_spec("shufflenet_v2_unit", **params)
        units.append(spec.build_for(shape))
        shape = spec.output_shape(shape)
    assert_same(nn.Sequential(*units), tv.stage2, (8, 8, 8))
    # The stride-1 unit has no branch1 weights, as torchvision's empty Sequential.
    assert not any(k.startswith("branch1") for k in units[1].state_dict())


@pytest.mark.parametrize(
    ("params", "in_shape"),
    [({"out_channels": 15, "stride": 2}, (8, 8, 8)), ({"out_channels": 16}, (8, 8, 8))],
)
def test_shufflenet_v2_unit_shape_errors(params, in_shape) -> None:
    with pytest.raises(ShapeError) as err:
        block_spec("shufflenet_v2_unit", **params).output_shape(in_shape)
    assert err.value.field == "out_channels"


def test_channel_shuffle_matches_torchvision() -> None:
    x = torch.randn(2, 12, 3, 3)
    for g in (2, 3, 4):
        torch.testing.assert_close(channel_shuffle(x, g), shufflenetv2.channel_shuffle(x, g))


# -- ShuffleNet v1 ----------------------------------------------------------------------


def _shuffle_reference(x: torch.Tensor, groups: int) -> torch.Tensor:
    # Zhang et al.: reshape to (g, n), transpose, flatten.
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, h, w)


@pytest.mark.parametrize(
    ("in_channels", "params"),
    [
        (24, {"out_channels": 24, "groups": 3}),
        (24, {"out_channels": 48, "stride": 2, "groups": 3}),
        (8, {"out_channels": 32, "stride": 2, "groups": 2, "first_group": False}),
    ],
)
def test_shufflenet_v1_unit_equals_the_paper(in_channels: int, params: dict) -> None:
    unit = randomize(build("shufflenet_v1_unit", (in_channels, 7, 7), **params)).eval()
    g, stride = params["groups"], params.get("stride", 1)
    first_groups = g if params.get("first_group", True) else 1
    assert unit.conv1.groups == first_groups and unit.conv3.groups == g
    assert unit.conv1.out_channels == params["out_channels"] // 4
    x = torch.randn(2, in_channels, 7, 7)
    out = F.relu(_bn(F.conv2d(x, unit.conv1.weight, groups=first_groups), unit.bn1))
    out = _shuffle_reference(out, g)
    mid = out.shape[1]
    out = _bn(F.conv2d(out, unit.conv2.weight, stride=stride, padding=1, groups=mid), unit.bn2)
    out = _bn(F.conv2d(out, unit.conv3.weight, groups=g), unit.bn3)
    if stride == 1:
        expected = F.relu(x + out)
    else:
        expected = F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), out], dim=1))
    with torch.no_grad():
        torch.testing.assert_close(unit(x), expected)
    assert expected.shape[1] == params["out_channels"]


@pytest.mark.parametrize(
    ("in_channels", "params", "field"),
    [
        (20, {"out_channels": 48, "stride": 2}, "groups"),  # 20 inputs, 3 groups
        (24, {"out_channels": 40, "stride": 2, "first_group": False}, "groups"),  # mid 10
        (24, {"out_channels": 24, "stride": 2}, "out_channels"),  # nothing left to concat
        (24, {"out_channels": 48}, "out_channels"),  # stride 1 must keep channels
        (24, {"out_channels": 24, "bottleneck_ratio": 0.01}, "bottleneck_ratio"),
    ],
)
def test_shufflenet_v1_unit_shape_errors(in_channels: int, params: dict, field: str) -> None:
    with pytest.raises(ShapeError) as err:
        block_spec("shufflenet_v1_unit", **params).output_shape((in_channels, 8, 8))
    assert err.value.field == field


def test_shufflenet_v1_dense_first_conv_takes_any_input_width() -> None:
    # 9 input channels split into 2 groups only when the first 1x1 is grouped.
    params = {"out_channels": 25, "stride": 2, "groups": 2}
    with pytest.raises(ShapeError) as err:
        block_spec("shufflenet_v1_unit", **params).output_shape((9, 8, 8))
    assert err.value.field == "groups"
    unit = build("shufflenet_v1_unit", (9, 8, 8), first_group=False, **params)
    assert unit.conv1.groups == 1 and unit.conv3.out_channels == 16
