"""Overrides turn one preset into another: dotted spec paths, classes, channels, input size."""

from __future__ import annotations

import pytest
import torch
import torchvision

import nasblocks
from nasblocks import SpecError, preset_names


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_resnet50_with_32x4d_groups_is_resnext50_32x4d() -> None:
    overrides = {"stages.groups": 32, "stages.width_per_group": 4}
    spec = nasblocks.load_spec("resnet50", {**overrides, "num_classes": 10, "input_size": 64})
    preset = nasblocks.load_spec("resnext50_32x4d", {"num_classes": 10, "input_size": 64})
    assert spec.hash() == preset.hash()  # the same architecture, layer for layer

    torch.manual_seed(0)
    varied = nasblocks.build("resnet50", num_classes=10, input_size=64, **overrides).eval()
    resnext = nasblocks.build("resnext50_32x4d", num_classes=10, input_size=64).eval()
    theirs = torchvision.models.resnext50_32x4d(num_classes=10).eval()
    assert shapes(varied) == shapes(resnext) == shapes(theirs)
    varied.load_state_dict(theirs.state_dict(), strict=True)
    resnext.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(varied(x), resnext(x), rtol=0, atol=0)
        torch.testing.assert_close(varied(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_resnet50_dilated_is_torchvision_replace_stride_with_dilation() -> None:
    torch.manual_seed(0)
    theirs = torchvision.models.resnet50(
        num_classes=10, replace_stride_with_dilation=[False, True, True]
    ).eval()
    ours = nasblocks.build(
        "resnet50", num_classes=10, input_size=64, **{"stages.dilate": [False, False, True, True]}
    ).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    # output stride 8: layer4 keeps layer2's 8x8 map of a 64x64 input
    spec = nasblocks.load_spec("resnet50", {"stages.dilate": [False, False, True, True]})
    out = {n.name: n.out_shape for n in nasblocks.spec.plan(spec, (3, 64, 64)).nodes}
    assert out["layer2"][1:] == out["layer4"][1:] == (8, 8)
    for name, module in ours.named_modules():  # torchvision's dilations, conv by conv
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
            ref = theirs.get_submodule(name)
            assert (module.dilation, module.padding, module.stride) == (
                ref.dilation,
                ref.padding,
                ref.stride,
            ), name


def test_classes_channels_and_input_size() -> None:
    model = nasblocks.build("resnet18", num_classes=10, in_channels=1, input_size=32)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert model.spec.input_shape == (1, 32, 32)
    gray = nasblocks.build("mnist_cnn", num_classes=5, in_channels=3, input_size=28)
    assert gray(torch.randn(2, 3, 28, 28)).shape == (2, 5)
    vgg = nasblocks.load_spec("vgg11", {"input_size": [48, 64], "num_classes": 3})
    assert vgg.input_shape == (3, 48, 64)
    assert nasblocks.spec.plan(vgg).out_shape == (3,)


def test_nested_paths_reach_into_layer_lists() -> None:
    spec = nasblocks.load_spec("alexnet", {"layers.3.layers.0.dropout": 0.1})
    assert spec.layers[3].children[0].block.p == 0.1
    spec = nasblocks.load_spec(
        "mobilenet_v2", {"layers.0.layers.1.inverted_residual.out_channels": 24}
    )
    assert spec.layers[0].children[1].block.out_channels == 24


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("resnet50", {"stages.grups": 32}, "did you mean 'groups'"),
        ("resnet18", {"stages.groups": 32}, "stages.groups"),  # basic blocks are not grouped
        ("resnet50", {"stages.layers": [3, 4, 6]}, "widths has 4 entries for 3 stages"),
        ("alexnet", {"input_size": 16}, "layers[0].layers[5].maxpool"),  # collapses to 0x0
        ("googlenet", {"vars.transform_input": "maybe"}, "transform_input"),
    ],
)
def test_bad_overrides_are_located_spec_errors(name: str, overrides: dict, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        nasblocks.load_spec(name, overrides)
    assert needle in str(info.value)
    assert info.value.file.endswith(f"{name}.yaml") and info.value.line


def test_every_preset_loads_and_plans_at_its_default_input() -> None:
    names = preset_names()
    torchvision_nets = {"alexnet", "googlenet", "inception_v3", "mobilenet_v2",
                        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0"}  # fmt: skip
    torchvision_nets |= {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")}
    torchvision_nets |= {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
    torchvision_nets |= {"resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                         "wide_resnet50_2", "wide_resnet101_2"}  # fmt: skip
    seed_nets = {"zfnet", "mnist_cnn", "cifar_net", "vgg_cifar", "sknet50", "unet"}
    seed_nets |= {"mnist_fc", "shake_resnet26_2x32d"}
    seed_nets |= {f"se_resnet{d}" for d in (18, 34, 50, 101, 152)}
    assert torchvision_nets | seed_nets <= set(names)
    assert torchvision_nets <= set(torchvision.models.list_models())
    for name in names:
        spec = nasblocks.load_spec(name)
        info = nasblocks.presets.preset_info(name)
        assert spec.name == info.name == name
        assert info.source and info.description, name
        assert nasblocks.spec.plan(spec).out_shape[0] == spec.num_classes


def test_presets_list_in_natural_order_as_timm_does() -> None:
    assert preset_names("resnet*")[:7] == [
        "resnet18",
        "resnet26d",
        "resnet34",
        "resnet50",
        "resnet50d",
        "resnet101",
        "resnet152",
    ]
    assert preset_names("vgg1*")[:3] == ["vgg11", "vgg11_bn", "vgg13"]
