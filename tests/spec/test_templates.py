"""Templates (reusable layer groups with $params) and the `block:` layer key."""

from __future__ import annotations

import pytest
import torch

import nasblocks
from nasblocks import SpecError, load_spec
from nasblocks.spec import plan

CELL = {
    "params": {"channels": None, "kernel": 3},
    "layers": [
        {"name": "a", "conv": {"out_channels": "$channels", "kernel_size": "$kernel"}},
        {"name": "b", "from": "input", "identity": None},
        {"name": "out", "add": ["a", "b"]},
    ],
}


def doc(layers, templates=None, **extra):
    return {
        "input": [4, 8, 8],
        "templates": templates or {"cell": CELL},
        "layers": layers,
        **extra,
    }


def test_a_template_use_is_the_group_written_out():
    templated = load_spec(doc([{"name": "c", "cell": {"channels": 4}, "repeat": 2}]))
    by_hand = load_spec(
        {
            "input": [4, 8, 8],
            "layers": [
                {
                    "name": "c",
                    "repeat": 2,
                    "layers": [
                        {"name": "a", "conv": {"out_channels": 4, "kernel_size": 3}},
                        {"name": "b", "from": "input", "identity": None},
                        {"name": "out", "add": ["a", "b"]},
                    ],
                }
            ],
        }
    )
    assert templated.canonical() == by_hand.canonical()
    assert templated.hash() == by_hand.hash()
    model = nasblocks.build(templated)
    assert model(torch.randn(1, 4, 8, 8)).shape == (1, 4, 8, 8)
    # repeat builds independent copies: two convs with their own weights
    assert sum(k.endswith("conv.weight") for k in model.state_dict()) == 2


def test_template_params_defaults_shorthand_and_outer_vars():
    spec = load_spec(
        doc(
            [
                {"name": "x", "cell": {"channels": 4, "kernel": 1}},
                {"name": "y", "cell": "$width"},  # one required parameter: scalar form
            ],
            vars={"width": 4},
        )
    )
    x, y = spec.layers
    assert x.children[0].block.kernel_size == 1
    assert y.children[0].block.kernel_size == 3  # the default
    assert y.children[0].block.out_channels == 4  # $width from vars, through the use


@pytest.mark.parametrize(
    ("layers", "templates", "message", "where"),
    [
        ([{"cell": None}], None, "template 'cell' needs 'channels'", ("layers", 0, "cell")),
        (
            [{"cell": {"channels": 4, "kernal": 3}}],
            None,
            "has no parameter 'kernal' (did you mean 'kernel'?)",
            ("layers", 0, "cell", "kernal"),
        ),
        ([{"cel": {"channels": 4}}], None, "did you mean 'cell'", ("layers", 0, "cel")),
        (
            [{"loop": None}],
            {"loop": {"layers": [{"again": None}]}, "again": {"layers": [{"loop": None}]}},
            "template 'loop' uses itself (loop -> again -> loop)",
            ("templates", "again", "layers", 0, "loop"),
        ),
        (
            [{"conv": 4}],
            {"conv": CELL},
            "template 'conv' has the name of a block",
            ("templates", "conv"),
        ),
        (
            [{"x": None}],
            {"x": {"params": {"forward": 1}, "layers": ["relu"]}},
            "template parameter 'forward' is an attribute every nn.Module has",
            ("templates", "x", "params", "forward"),
        ),
    ],
)
def test_template_mistakes_are_located(layers, templates, message, where):
    with pytest.raises(SpecError) as e:
        load_spec(doc(layers, templates))
    assert message in e.value.message
    assert e.value.path == where


def test_nested_templates_cannot_blow_up_the_parser():
    # each level uses the one below ten times: 10**6 layers if expanded
    templates = {"t0": {"layers": ["relu"]}}
    for i in range(1, 7):
        templates[f"t{i}"] = {"layers": [{"name": f"l{j}", f"t{i - 1}": None} for j in range(10)]}
    with pytest.raises(SpecError, match="more than 10,000 layers once templates are expanded"):
        load_spec(doc([{"t6": None}], templates))


def test_block_key_is_the_block_as_a_value():
    direct = load_spec({"input": [3, 8, 8], "layers": [{"name": "c", "conv": 8}, "relu"]})
    valued = load_spec(
        {"input": [3, 8, 8], "layers": [{"name": "c", "block": {"conv": 8}}, {"block": "relu"}]}
    )
    assert direct.canonical() == valued.canonical()
    used = load_spec(doc([{"name": "c", "block": {"cell": 4}}]))
    assert used.layers[0].children is not None


@pytest.mark.parametrize(
    ("layer", "message", "where"),
    [
        ({"block": [1, 2]}, "block is a block or template name", ("layers", 0, "block")),
        ({"block": {"conv": 8}, "relu": None}, "found `block` and 'relu'", ("layers", 0, "relu")),
        ({"block": {"name": "x"}}, "'name' goes beside `block`", ("layers", 0, "block", "name")),
        (
            {"block": {"conv": {"out_channels": 8, "kernel": 3}}},
            "unknown field 'kernel'",
            ("layers", 0, "block", "conv", "kernel"),
        ),
    ],
)
def test_block_key_mistakes(layer, message, where):
    with pytest.raises(SpecError) as e:
        load_spec({"input": [3, 8, 8], "layers": [layer]})
    assert message in e.value.message
    assert e.value.path == where


def test_template_error_inside_points_at_the_definition():
    templates = {
        "bad": {"params": {"c": None}, "layers": [{"conv": {"out_channels": "$c", "stride": 0}}]}
    }
    with pytest.raises(SpecError) as e:
        load_spec(doc([{"bad": 4}], templates))
    assert e.value.path[:4] == ("templates", "bad", "layers", 0)


def test_shapes_flow_through_a_template():
    with pytest.raises(SpecError, match="add inputs must have one shape") as e:
        plan(load_spec(doc([{"name": "c", "cell": {"channels": 6}}])))
    assert e.value.path == ("templates", "cell", "layers", 2)  # 6 channels from a, 4 from b
