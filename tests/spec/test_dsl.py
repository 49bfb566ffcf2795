"""The three spec styles (VGG cfg list, ResNet stages, general layer list) and their rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nasblocks
from nasblocks import SpecError, load_spec
from nasblocks.spec import plan


def keys(model) -> list[str]:
    return list(model.state_dict())


def test_vgg_cfg_list_matches_torchvision_layout():
    spec = {
        "name": "v",
        "input": [3, 32, 32],
        "layers": [
            {"name": "features", "vgg": {"cfg": [8, "M", 16, 16, "M"], "norm": "batch"}},
            "flatten",
            {"name": "fc", "linear": 10},
        ],
    }
    model = nasblocks.build(spec)
    # conv, bn, relu, pool, conv, bn, relu, conv, bn, relu, pool: torchvision's indices
    assert [k for k in keys(model) if k.endswith("weight")] == [
        "features.0.weight",
        "features.1.weight",
        "features.4.weight",
        "features.5.weight",
        "features.7.weight",
        "features.8.weight",
        "fc.weight",
    ]
    assert isinstance(model.features[3], torch.nn.MaxPool2d)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert plan(load_spec(spec)).nodes[0].out_shape == (16, 8, 8)


def test_vgg_list_short_form_has_no_norm():
    spec = {"name": "v", "input": [1, 8, 8], "layers": [{"vgg": [4, "M", 8, "A"]}]}
    model = nasblocks.build(spec)
    assert not any("running_mean" in k for k in keys(model))
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 8, 2, 2)


def test_resnet_stages_use_torchvision_names():
    spec = {
        "name": "r",
        "input": [3, 32, 32],
        "num_classes": 7,
        "stages": {
            "block": "bottleneck",
            "layers": [1, 2],
            "widths": [8, 16],
            "groups": 2,
            "width_per_group": 8,
        },
    }
    model = nasblocks.build(spec)
    k = keys(model)
    for expected in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer2.1.conv3.weight",
        "fc.bias",
    ]:
        assert expected in k
    # bottleneck width = int(8 * 8 / 64) * 2 = 2 channels, grouped in 2
    assert model.layer1[0].conv2.weight.shape == (2, 1, 3, 3)
    assert model.layer2[1].conv3.weight.shape == (64, 4, 1, 1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_stages_per_stage_values_and_attention():
    spec = {
        "name": "r",
        "input": [3, 32, 32],
        "stem": {"out_channels": 8, "kernel_size": 3, "stride": 1, "pool": "none"},
        "stages": {
            "block": "basic",
            "layers": [1, 1, 1],
            "widths": [8, 16, 32],
            "attention": ["none", "se", "cbam"],
            "attention_reduction": 4,
        },
        "head": {"dropout": 0.2},
    }
    model = nasblocks.build(spec)
    identity = torch.nn.Identity
    assert isinstance(model.layer1[0].se, identity)
    assert type(model.layer2[0].se).__name__ == "SqueezeExcite"
    assert type(model.layer3[0].se).__name__ == "CBAM"  # every attention kind in slot `se`
    assert "maxpool" not in dict(model.named_children())
    assert isinstance(model.dropout, torch.nn.Dropout)
    assert plan(load_spec(spec)).nodes[-1].out_shape == (1000,)


def test_general_list_references_and_multi_input():
    spec = {
        "name": "g",
        "input": [3, 16, 16],
        "layers": [
            {"name": "stem", "conv": 8},
            {"name": "a", "conv": 8},
            {"name": "b", "conv": 8, "from": "stem"},
            {"name": "sum", "add": ["a", "b"]},
            {"name": "gate", "multiply": [-1, 0]},
            {"name": "cat", "concat": ["gate", "input"]},
        ],
    }
    model = nasblocks.build(spec).eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    assert out.shape == (2, 11, 16, 16)
    with torch.no_grad():
        s = model.stem(x)
        expected = torch.cat([(model.a(s) + model.b(s)) * s, x], 1)
    torch.testing.assert_close(out, expected)


def test_repeat_and_depth_multiple():
    base = {"name": "d", "input": [3, 8, 8], "layers": [{"name": "body", "conv": 4, "repeat": 4}]}
    assert len(nasblocks.build(base).body) == 4
    assert len(nasblocks.build(base, depth_multiple=0.5).body) == 2
    one = nasblocks.build({**base, "layers": [{"name": "body", "conv": 4, "repeat": 1}]})
    assert isinstance(one.body.conv, torch.nn.Conv2d)  # a single block is not wrapped


def test_width_multiple_rounds_to_divisor():
    spec = {
        "name": "w",
        "input": [3, 8, 8],
        "width_multiple": 0.3,
        "round_channels": 8,
        "layers": [{"name": "c", "conv": 64}, "flatten", {"name": "fc", "linear": 10}],
    }
    model = nasblocks.build(spec)
    assert model.c.conv.out_channels == 24  # 19.2 -> 24 (multiple of 8, within 10%)
    assert model.fc.out_features == 10  # classifier width is not scaled


def test_model_defaults_and_per_layer_override():
    spec = {
        "name": "n",
        "input": [3, 8, 8],
        "defaults": {"activation": "silu", "norm_eps": 1e-3, "norm": "group"},
        "layers": [
            {"name": "a", "conv": 8},
            {"name": "b", "conv": {"out_channels": 8, "activation": "relu6"}},
        ],
    }
    model = nasblocks.build(spec)
    assert isinstance(model.a.act, torch.nn.SiLU) and isinstance(model.b.act, torch.nn.ReLU6)
    assert isinstance(model.a.bn, torch.nn.GroupNorm) and model.a.bn.eps == 1e-3


def test_defaults_only_apply_when_set():
    """An unset model default leaves each block's own default alone."""
    spec = {"name": "n", "input": [3, 8, 8], "layers": [{"name": "up", "conv_transpose": 4}]}
    model = nasblocks.build(spec)
    assert not any("running_mean" in k for k in keys(model))  # conv_transpose: no norm default


def test_named_groups_become_attributes():
    spec = {
        "name": "g",
        "input": [3, 8, 8],
        "layers": [
            {"name": "features", "layers": [{"conv": 4}, {"name": "pool", "maxpool": 2}]},
            {"name": "head", "layers": ["flatten", {"name": "fc", "linear": 3}]},
        ],
    }
    model = nasblocks.build(spec)
    assert keys(model)[0] == "features.0.conv.weight"
    assert "head.fc.weight" in keys(model)
    assert isinstance(model.features.pool, torch.nn.MaxPool2d)


def test_group_with_internal_references_builds_a_graph():
    spec = {
        "name": "g",
        "input": [3, 8, 8],
        "layers": [
            {
                "name": "block",
                "layers": [{"name": "x1", "conv": 4}, {"conv": 4}, {"add": [-1, "x1"]}],
            }
        ],
    }
    model = nasblocks.build(spec)
    assert isinstance(model.block, torch.fx.GraphModule)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)


def test_aux_outputs_only_in_training():
    spec = {
        "name": "a",
        "input": [3, 8, 8],
        "outputs": ["fc", "side"],
        "layers": [
            {"name": "body", "conv": 4},
            {"name": "side", "classifier": 2, "aux": True, "from": "body"},
            {"name": "pool", "global_avgpool": {"flatten": True}, "from": "body"},
            {"name": "fc", "linear": 3},
        ],
    }
    model = nasblocks.build(spec)
    x = torch.randn(2, 3, 8, 8)
    train_out = model.train()(x)
    assert train_out.fc.shape == (2, 3) and train_out.side.shape == (2, 2)
    assert model.eval()(x).shape == (2, 3)


def test_aux_output_cannot_feed_layers():
    spec = {
        "name": "a",
        "input": [3, 8, 8],
        "layers": [{"name": "side", "conv": 4, "aux": True}, {"conv": 4}],
    }
    with pytest.raises(SpecError, match="aux output"):
        load_spec(spec)


def test_overrides_by_dotted_path():
    spec = {"name": "o", "input": [3, 8, 8], "layers": [{"conv": 4}, {"conv": 8}]}
    s = load_spec(spec, {"layers.1.conv": 16, "in_channels": 1, "input_size": [12, 10]})
    assert s.input_shape == (1, 12, 10)
    assert plan(s).out_shape == (16, 12, 10)
    with pytest.raises(SpecError, match="nothing at this path"):
        load_spec(spec, {"layers.5.conv": 3})


def test_spec_hash_is_canonical():
    a = load_spec({"name": "a", "input": [3, 8, 8], "layers": [{"conv": 4}]})
    b = load_spec(
        {
            "name": "b",
            "input": [3, 8, 8],
            "layers": [{"conv": {"out_channels": 4, "kernel_size": 3}}],
        }
    )
    c = load_spec({"name": "a", "input": [3, 8, 8], "layers": [{"conv": 5}]})
    assert a.hash() == b.hash() != c.hash()


def test_build_is_pure_and_deterministic():
    spec = {
        "name": "p",
        "input": [3, 8, 8],
        "init": "kaiming",
        "layers": [{"conv": 4}, "flatten", {"linear": 2}],
    }
    torch.manual_seed(0)
    one = nasblocks.build(spec).state_dict()
    torch.manual_seed(0)
    two = nasblocks.build(spec).state_dict()
    assert list(one) == list(two)
    for k in one:
        torch.testing.assert_close(one[k], two[k])


def test_1e_minus_3_reads_as_float(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ninput: [3, 8, 8]\ndefaults: {norm_eps: 1e-3}\nlayers: [{conv: 4}]\n")
    assert nasblocks.build(path).get_submodule("0").bn.eps == 1e-3


def test_schema_lists_blocks_and_forbids_extras():
    from nasblocks.spec.schema import spec_json_schema

    schema = spec_json_schema()
    layer = schema["$defs"]["Layer"]
    assert layer["additionalProperties"] is False
    for name in ("conv", "bottleneck", "se", "vgg", "from", "repeat"):
        assert name in layer["properties"], name
    assert schema["additionalProperties"] is False
    assert "description" in schema["properties"]["stages"]


def test_outputs_mapping_names_fields_and_drops_unlisted_aux():
    layers = [
        {"name": "body", "conv": 4},
        {"name": "side", "classifier": 2, "aux": True, "from": "body"},
        {"name": "pool", "global_avgpool": {"flatten": True}, "from": "body"},
        {"name": "fc", "linear": 3},
    ]
    base = {"name": "a", "input": [3, 8, 8], "layers": layers}
    named = nasblocks.build({**base, "outputs": {"logits": "fc", "aux_logits": "side"}})
    out = named.train()(torch.randn(2, 3, 8, 8))
    assert out._fields == ("logits", "aux_logits") and out.aux_logits.shape == (2, 2)
    plain = nasblocks.build({**base, "outputs": ["fc"]})  # torchvision's aux_logits=False
    assert "side" not in dict(plain.named_children())
    assert plain.train()(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(SpecError, match="unknown layer 'fcc'"):
        load_spec({**base, "outputs": {"logits": "fcc"}})


def test_every_shipped_spec_passes_the_json_schema_and_it_refuses_a_bad_one():
    """What an editor checks with `nasblocks schema` agrees with nasblocks: every preset and
    example is valid, the new forms (activation arguments, dotted names) too; a bad
    activation mapping is flagged."""
    jsonschema = pytest.importorskip("jsonschema")  # (installed with Ray, the dev extra)
    import yaml

    from nasblocks.spec.schema import spec_json_schema

    validator = jsonschema.Draft202012Validator(spec_json_schema())
    root = Path(nasblocks.__file__).parent
    files = sorted((root / "presets").glob("*.yaml"))
    files += sorted((root.parent / "experiments" / "examples").glob("*.yaml"))
    assert len(files) > 50
    for file in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(file.read_text()))]
        assert not errors, (file.name, errors[:3])
    doc = {
        "name": "t",
        "input": [3, 8, 8],
        "defaults": {"activation": {"leaky_relu": 0.01}},
        "layers": [{"name": "convs.0", "conv_bn_act": {"out_channels": 4}}],
    }
    assert not list(validator.iter_errors(doc))
    doc["defaults"]["activation"] = {"leaky_relu": 0.01, "relu": None}
    assert list(validator.iter_errors(doc))
