"""U-Net parts: the reference ``unetConv2`` / ``unetUp`` layout, counts, shapes and maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from block_helpers import assert_constructor_mirrors_spec
from torch import nn

from nasblocks.errors import ShapeError
from nasblocks.registry import block_spec, create_block


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def ref_conv2_params(c_in: int, c_out: int, batchnorm: bool) -> int:
    """``unetConv2`` (n=2, 3x3, biased convs): 9*out*(in + out) + 2*out, + 4*out with BN."""
    return 9 * c_out * (c_in + c_out) + 2 * c_out + (4 * c_out if batchnorm else 0)


def test_double_conv_layout_and_count():
    m = create_block("double_conv", 3, out_channels=8)
    # conv1: 3*8*9 + 8 = 224, bn 16; conv2: 8*8*9 + 8 = 584, bn 16 -> 840
    assert n_params(m) == 840 == ref_conv2_params(3, 8, True)
    assert [type(layer) for layer in m.conv1] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert list(dict(m.named_children())) == ["conv1", "conv2"]
    assert "conv2.1.running_mean" in m.state_dict()

    plain = create_block("double_conv", 3, out_channels=8, norm="none", n=3)
    # 224 + 584 + 584 = 1392: Sequential(conv, relu), as unetConv2 with is_batchnorm False
    assert n_params(plain) == 1392
    assert list(plain.state_dict()) == [
        f"conv{i}.0.{p}" for i in (1, 2, 3) for p in ("weight", "bias")
    ]
    assert [type(layer) for layer in plain.conv3] == [nn.Conv2d, nn.ReLU]


@pytest.mark.parametrize(
    ("params", "in_shape", "out_shape"),
    [
        ({"out_channels": 8}, (3, 17, 9), (8, 17, 9)),
        ({"out_channels": 4, "padding": 0}, (3, 16, 16), (4, 12, 12)),
        ({"out_channels": 4, "stride": 2, "n": 1}, (3, 16, 15), (4, 8, 8)),
        ({"out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1]}, (3, 6, 7), (4, 6, 7)),
    ],
)
def test_double_conv_shapes(params, in_shape, out_shape):
    spec = block_spec("double_conv", **params)
    assert spec.output_shape(in_shape) == out_shape
    out = spec.build_for(in_shape)(torch.randn(2, *in_shape))
    assert tuple(out.shape[1:]) == out_shape


def test_double_conv_collapsing_map_raises():
    with pytest.raises(ShapeError) as err:
        block_spec("double_conv", out_channels=4, padding=0).output_shape((3, 4, 4))
    assert err.value.field == "kernel_size"


def test_double_conv_matches_the_reference_maths():
    torch.manual_seed(0)
    m = create_block("double_conv", 4, out_channels=6).eval()
    for bn in (m.conv1[1], m.conv2[1]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, 7, 5)
    y = x
    for i in (1, 2):
        conv, bn = getattr(m, f"conv{i}")[0], getattr(m, f"conv{i}")[1]
        y = F.conv2d(y, conv.weight, conv.bias, padding=1)
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=1e-5)
        y = F.relu(y)
    torch.testing.assert_close(m(x), y)


def test_unet_down():
    spec = block_spec("unet_down", out_channels=16)
    assert spec.output_shape((8, 9, 16)) == (16, 4, 8)
    m = spec.build(8)
    assert n_params(m) == ref_conv2_params(8, 16, True)
    x = torch.randn(2, 8, 9, 16)
    out = m(x)
    assert out.shape == (2, 16, 4, 8)
    torch.testing.assert_close(out, m.conv(F.max_pool2d(x, 2)))
    with pytest.raises(ShapeError, match="2x2 max pool"):
        spec.output_shape((8, 1, 16))


def test_unet_up_bilinear_count_and_maths():
    torch.manual_seed(0)
    spec = block_spec("unet_up", out_channels=8)
    assert spec.output_shape([(16, 4, 5), (8, 8, 10)]) == (8, 8, 10)
    m = spec.build([16, 8])
    # up = [UpsamplingBilinear2d, 1x1 conv]: 16*8 + 8 = 136; conv (16 -> 8, no norm):
    # 16*8*9 + 8 = 1160 and 8*8*9 + 8 = 584 -> 1880
    assert n_params(m) == 1880 == 136 + ref_conv2_params(16, 8, False)
    assert isinstance(m.up[0], nn.UpsamplingBilinear2d)
    assert sorted(m.state_dict()) == [
        "conv.conv1.0.bias",
        "conv.conv1.0.weight",
        "conv.conv2.0.bias",
        "conv.conv2.0.weight",
        "up.1.bias",
        "up.1.weight",
    ]
    high, skip = torch.randn(2, 16, 4, 5), torch.randn(2, 8, 8, 10)
    up = F.interpolate(high, scale_factor=2, mode="bilinear", align_corners=True)
    y = torch.cat([F.conv2d(up, m.up[1].weight, m.up[1].bias), skip], 1)
    for seq in (m.conv.conv1, m.conv.conv2):
        y = F.relu(F.conv2d(y, seq[0].weight, seq[0].bias, padding=1))
    out = m(high, skip)
    torch.testing.assert_close(out, y)
    out.sum().backward()
    assert m.up[1].weight.grad is not None and m.conv.conv1[0].weight.grad is not None


def test_unet_up_deconv_count_and_maths():
    torch.manual_seed(0)
    m = create_block("unet_up", [16, 8], out_channels=8, deconv=True, norm="batch").eval()
    # up: ConvTranspose2d 16*8*2*2 + 8 = 520; conv with BN: 1160 + 16 + 584 + 16 -> 2296
    assert n_params(m) == 2296 == 520 + ref_conv2_params(16, 8, True)
    high, skip = torch.randn(2, 16, 3, 3), torch.randn(2, 8, 6, 6)
    y = torch.cat([F.conv_transpose2d(high, m.up.weight, m.up.bias, stride=2), skip], 1)
    torch.testing.assert_close(m(high, skip), m.conv(y))


def test_unet_up_n_concat_widens_the_conv():
    # unetUp(in_size=8, out_size=4, n_concat=3): conv takes 8 + 4 = 12 channels, skip 8.
    spec = block_spec("unet_up", out_channels=4, n_concat=3)
    assert spec.output_shape([(8, 2, 2), (8, 4, 4)]) == (4, 4, 4)
    m = spec.build([8, 8])
    assert m.conv.conv1[0].in_channels == 12
    assert m(torch.randn(1, 8, 2, 2), torch.randn(1, 8, 4, 4)).shape == (1, 4, 4, 4)


@pytest.mark.parametrize(
    ("params", "in_shapes", "match"),
    [
        ({"out_channels": 8}, [(16, 4, 4), (8, 9, 8)], "does not match the 9x8 skip"),
        ({"out_channels": 8}, [(16, 4, 4), (16, 8, 8)], "skip must have 8, got 16"),
        ({"out_channels": 16}, [(16, 4, 4), (16, 8, 8)], "leaves none for the skip"),
        ({"out_channels": 8}, [(16, 4, 4)], "two inputs"),
        ({"out_channels": 8}, [(16,), (8, 8, 8)], "feature map"),
    ],
)
def test_unet_up_shape_errors(params, in_shapes, match):
    with pytest.raises(ShapeError, match=match):
        block_spec("unet_up", **params).output_shape(in_shapes)


def test_unet_up_module_rejects_inconsistent_channels():
    with pytest.raises(ShapeError, match="skip channels"):
        create_block("unet_up", [16, 16], out_channels=8)


def _unet(in_channels: int, n_classes: int, feature_scale: int, deconv: bool) -> nn.ModuleDict:
    """The reference UNet composed from the blocks (conv1, 4 downs, 4 ups, final 1x1)."""
    f = [64 // feature_scale * 2**i for i in range(5)]
    return nn.ModuleDict(
        {
            "conv1": create_block("double_conv", in_channels, out_channels=f[0]),
            "down": nn.ModuleList(
                create_block("unet_down", f[i], out_channels=f[i + 1]) for i in range(4)
            ),
            "up": nn.ModuleList(
                create_block("unet_up", [f[i + 1], f[i]], out_channels=f[i], deconv=deconv)
                for i in reversed(range(4))
            ),
            "final": create_block("conv2d", f[0], out_channels=n_classes, kernel_size=1),
        }
    )


def _run_unet(net: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
    skips = [net["conv1"](x)]
    for down in net["down"]:
        skips.append(down(skips[-1]))
    y = skips.pop()
    for up in net["up"]:
        y = up(y, skips.pop())
    return net["final"](y)


def test_whole_unet_by_hand():
    torch.manual_seed(0)
    net = _unet(3, n_classes=2, feature_scale=8, deconv=False)
    out = _run_unet(net, torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 2, 32, 32)
    out.mean().backward()
    deconv_net = _unet(3, n_classes=5, feature_scale=8, deconv=True)
    assert _run_unet(deconv_net, torch.randn(2, 3, 32, 32)).shape == (2, 5, 32, 32)


def test_whole_unet_parameter_count_matches_the_reference():
    # The reference UNet(in_channels=3, n_classes=2, feature_scale=2): filters 32..512.
    # Encoder: unetConv2 with BN (3->32, 32->64, 64->128, 128->256, 256->512);
    # decoder: unetUp = 1x1 up conv (in*out + out) + unetConv2 without BN (in -> out);
    # final 1x1 conv 32*2 + 2.
    f = [32, 64, 128, 256, 512]
    expected = sum(ref_conv2_params(a, b, True) for a, b in zip([3, *f[:4]], f, strict=True))
    expected += sum(
        b * a + a + ref_conv2_params(b, a, False) for a, b in zip(f[:4], f[1:], strict=True)
    )
    expected += 32 * 2 + 2
    assert expected == 7_241_858
    assert n_params(_unet(3, 2, feature_scale=2, deconv=False)) == expected


@pytest.mark.parametrize("name", ["double_conv", "unet_down", "unet_up"])
def test_constructor_mirrors_the_spec(name):
    assert_constructor_mirrors_spec(name)
