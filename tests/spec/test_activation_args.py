"""Activation fields take arguments: ``activation: {leaky_relu: SLOPE}`` anywhere a block (or
the spec's ``defaults``) takes an activation name, in the same form a layer would be written;
a bad one is one located line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from torch import nn

import nasblocks
from nasblocks.cli.main import main

SPEC = """\
name: t
input: [3, 16, 16]
defaults: {activation: {leaky_relu: 0.01}}
layers:
  - conv_bn_act: {out_channels: 8}
  - conv_bn_act: {out_channels: 8, activation: {leaky_relu: {negative_slope: 0.2}}}
  - conv_bn_act: {out_channels: 8, activation: leaky_relu}
  - global_avgpool: {flatten: true}
  - linear: 10
"""


def slopes(model: nn.Module) -> list[float]:
    return [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)]


def test_slopes_from_the_default_a_mapping_and_a_bare_name(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(SPEC)
    assert slopes(nasblocks.build(path)) == [0.01, 0.2, 0.1]  # bare leaky_relu: YOLO's 0.1


def test_stems_and_vgg_lists_use_the_same_slope_as_the_blocks():
    """The ResNet stem and a VGG cfg list write the activation as a layer: the same slope."""
    resnet = {
        "name": "r",
        "input": [3, 32, 32],
        "defaults": {"activation": {"leaky_relu": 0.05}},
        "stages": {"block": "basic", "layers": [1], "widths": [8]},
    }
    assert set(slopes(nasblocks.build(resnet))) == {0.05}
    bare = {**resnet, "defaults": {"activation": "leaky_relu"}}
    assert set(slopes(nasblocks.build(bare))) == {0.1}
    vgg = {
        "name": "v",
        "input": [3, 16, 16],
        "layers": [
            {"name": "features", "vgg": {"cfg": [8, "M", 16], "activation": {"leaky_relu": 0.3}}},
            {"global_avgpool": {"flatten": True}},
            {"linear": 10},
        ],
    }
    assert slopes(nasblocks.build(vgg)) == [0.3, 0.3]


def test_a_mapping_and_a_scalar_are_the_same_spec(tmp_path):
    (tmp_path / "a.yaml").write_text(SPEC)
    (tmp_path / "b.yaml").write_text(
        SPEC.replace("{leaky_relu: 0.01}", "{leaky_relu: {negative_slope: 0.01}}")
    )
    a, b = (nasblocks.load_spec(tmp_path / f"{n}.yaml") for n in "ab")
    assert a.hash() == b.hash()


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "{leaky: 0.1}",
            "'leaky' takes no arguments here; those that do: {leaky_relu: "
            "negative_slope} (did you mean 'leaky_relu'?)",
        ),
        ("{relu: 1}", "'relu' takes no arguments here"),
        ("{leaky_relu: 2}", "leaky_relu.negative_slope: Input should be less than or equal to 1"),
        ("{leaky_relu: {slope: 0.1}}", "leaky_relu.slope: Extra inputs are not permitted"),
        ("{leaky_relu: 0.1, relu: null}", "an activation is a name"),
        ("reluu", "(did you mean 'relu'"),
        ("{leaky_relu: true}", "leaky_relu.negative_slope: Input should be a valid number"),
        ("{leaky_relu: '0.5'}", "leaky_relu.negative_slope: Input should be a valid number"),
        ("{leaky_relu: .nan}", "leaky_relu.negative_slope: Input should be a finite number"),
    ],
)
def test_a_bad_activation_is_one_located_line(tmp_path, capsys, value, message):
    path = tmp_path / "t.yaml"
    path.write_text(SPEC.replace("{leaky_relu: {negative_slope: 0.2}}", value))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{path}:6:36: layers[1].conv_bn_act.activation: "), err
    assert message in err, err


def test_csp_blocks_take_the_mapping_and_the_default(tmp_path):
    """timm's CSP nets are where partial(LeakyReLU, 0.01) comes from."""
    path = tmp_path / "csp.yaml"
    path.write_text(
        "name: c\ninput: [3, 32, 32]\ndefaults: {activation: {leaky_relu: 0.02}}\nlayers:\n"
        "  - conv_norm_act: 8\n"
        "  - csp_stage: {out_channels: 16, depth: 1, expand_ratio: 2.0, down_growth: true}\n"
        "  - conv_norm_act: {out_channels: 8, activation: {leaky_relu: 0.3}}\n"
        "  - conv_norm_act: {out_channels: 8, activation: mish}\n"
    )
    model = nasblocks.build(path)
    found = slopes(model)
    assert found[-1] == 0.3 and set(found[:-1]) == {0.02} and len(found) > 3
    assert sum(isinstance(m, nn.Mish) for m in model.modules()) == 1


def test_the_value_is_frozen_and_exports_as_written(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(SPEC)
    spec = nasblocks.load_spec(path)
    value = spec.layers[1].block.activation
    with pytest.raises(ValidationError):
        value.leaky_relu = None
    with pytest.raises(ValidationError):
        value.leaky_relu.negative_slope = 5.0
    assert value.model_dump() == {"leaky_relu": {"negative_slope": 0.2}}
    out = tmp_path / "out.yaml"
    assert main(["export", str(path), "-o", str(out)]) == 0
    again = nasblocks.load_spec(out)
    assert again.hash() == spec.hash() and slopes(nasblocks.build(out)) == [0.01, 0.2, 0.1]
