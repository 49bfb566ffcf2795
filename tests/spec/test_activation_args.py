"""Activation fields take arguments: ``activation: {leaky_relu: SLOPE}`` anywhere a block (or
the spec's ``defaults``) takes an activation name, in the same form a layer would be written;
a bad one is one located line."""

from __future__ import annotations

import pytest
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
