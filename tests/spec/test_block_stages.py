"""``block_stages`` (stages of sibling blocks, timm's EfficientNet arch_def) and
``fixed_width``: what they build, and one located line for each mistake."""

from __future__ import annotations

import pytest
import torch
from test_errors import parse, validate

import nasblocks
from nasblocks import SpecError, load_spec
from nasblocks.spec.schema import spec_json_schema

STAGES = [
    {"block": "ds_conv", "out_channels": 8},
    [{"stride": 2, "out_channels": 16}, {"repeat": 2, "out_channels": 16, "se": 0.25}],
]


def spec(block_stages, **doc):
    return {
        "name": "t",
        "input": [3, 16, 16],
        "layers": [{"name": "blocks", "block_stages": block_stages}],
        **doc,
    }


def test_stages_are_groups_of_sibling_blocks_with_the_stride_first():
    s = load_spec(spec({"defaults": {"block": "mb_conv", "expand_ratio": 2}, "stages": STAGES}))
    (blocks,) = s.layers
    assert [stage.name for stage in blocks.children] == ["0", "1"]
    stage = blocks.children[1]
    assert [b.name for b in stage.children] == ["0", "1", "2"]  # siblings, no repeat copies
    assert all(b.repeat == 1 for b in stage.children)
    assert [b.block.stride for b in stage.children] == [2, 1, 1]
    assert [b.block.se for b in stage.children] == [0.0, 0.25, 0.25]
    assert stage.children[0].block.expand_ratio == 2  # from defaults
    model = nasblocks.build(s)
    assert "blocks.1.2.se.conv_reduce.weight" in model.state_dict()
    assert model.blocks[1][0].conv_dw.stride == (2, 2)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 16, 8, 8)


def test_short_form_any_block_vars_and_multipliers():
    doc = spec(
        [{"block": "basic", "channels": 8, "repeat": "$n"}, {"block": "basic", "channels": 16,
          "stride": 2, "repeat": 2}],
        vars={"n": 2}, width_multiple=1.5, depth_multiple=1.2, round_channels=8,
    )  # fmt: skip
    (blocks,) = load_spec(doc).layers
    # ceil(2 * 1.2) = 3 blocks per stage; widths 8 * 1.5 -> 16, 16 * 1.5 -> 24
    assert [len(st.children) for st in blocks.children] == [3, 3]
    assert [st.children[0].block.channels for st in blocks.children] == [16, 24]
    rounded = {**doc, "layers": [{"name": "b", "block_stages": {"stages": doc["layers"][0][
        "block_stages"], "depth_rounding": "round"}}]}  # fmt: skip
    assert [len(st.children) for st in load_spec(rounded).layers[0].children] == [2, 2]


def test_fixed_width_keeps_a_layer_and_its_children_as_written():
    doc = {
        "name": "t",
        "input": [3, 8, 8],
        "width_multiple": 2.0,
        "layers": [
            {"conv": 8},
            {"fixed_width": True, "conv": 8},
            {"name": "g", "fixed_width": True, "layers": [{"conv": 4}, {"layers": [{"conv": 4}]}]},
            {"conv": 8},
        ],
    }
    layers = load_spec(doc).layers
    assert layers[0].block.out_channels == 16 and layers[3].block.out_channels == 16
    assert layers[1].block.out_channels == 8
    g = layers[2].children
    assert g[0].block.out_channels == 4 and g[1].children[0].block.out_channels == 4


def test_schema_documents_the_sugar():
    layer = spec_json_schema()["$defs"]["Layer"]["properties"]
    assert "block_stages" in layer and "fixed_width" in layer


def test_a_template_cannot_be_named_block_stages():
    doc = spec(STAGES, templates={"block_stages": {"layers": ["relu"]}})
    with pytest.raises(SpecError, match="has the name of a block"):
        load_spec(doc)


HEAD = "name: t\ninput: [3, 16, 16]\nlayers:\n  - name: blocks\n"
BODY = (
    "    block_stages:\n"  # line 5
    "      defaults: {block: mb_conv, expand_ratio: 2}\n"  # 6
    "      stages:\n"  # 7
    "        - {block: ds_conv, out_channels: 8}\n"  # 8
    "        - - {stride: 2, out_channels: 16}\n"  # 9
    "          - {repeat: 2, out_channels: 16}\n"  # 10
)
AT = "layers[0].block_stages"


def edit(old: str, new: str, body: str = BODY) -> str:
    assert old in body
    return HEAD + body.replace(old, new)


BAD = [
    # (id, document, line, yaml path, message fragment)
    ("unknown-block", edit("ds_conv", "ds_cnv"), 8, f"{AT}.stages[0].block",
     "did you mean 'ds_conv'"),
    ("unknown-default-block", edit("block: mb_conv", "block: mbconv"), 6,
     f"{AT}.defaults.block", "did you mean 'mb_conv'"),
    ("no-block", edit("block: mb_conv, ", ""), 9, f"{AT}.stages[1][0]", "needs a `block`"),
    ("block-not-a-name", edit("block: ds_conv", "block: 3"), 8, f"{AT}.stages[0].block",
     "block is a block name"),
    ("unknown-field", edit("{stride: 2,", "{strid: 2,"), 9, f"{AT}.stages[1][0].strid",
     "did you mean 'stride'"),
    ("wrong-type", edit("{repeat: 2, out_channels: 16}", "{repeat: 2, out_channels: big}"), 10,
     f"{AT}.stages[1][1].out_channels", "valid integer"),
    ("missing-field", edit("{stride: 2, out_channels: 16}", "{stride: 2}"), 9,
     f"{AT}.stages[1][0]", "missing required field 'out_channels' of mb_conv"),
    ("late-stride", edit("{repeat: 2, out_channels", "{repeat: 2, stride: 2, out_channels"), 10,
     f"{AT}.stages[1][1].stride", "only a stage's first entry is strided"),
    ("bad-repeat", edit("repeat: 2", "repeat: 0"), 10, f"{AT}.stages[1][1].repeat",
     "repeat is a whole number"),
    ("unused-default", edit("expand_ratio: 2", "expand_rato: 2"), 6, f"{AT}.defaults.expand_rato",
     "did you mean 'expand_ratio'"),
    ("bad-default", edit("expand_ratio: 2", "expand_ratio: big"), 6,
     f"{AT}.defaults.expand_ratio", "valid number"),
    ("stage-not-entry", edit("        - {block: ds_conv, out_channels: 8}", "        - 5"), 8,
     f"{AT}.stages[0]", "a stage is an entry"),
    ("entry-not-mapping", edit("          - {repeat: 2, out_channels: 16}", "          - 16"),
     10, f"{AT}.stages[1][1]", "an entry is a mapping"),
    ("even-kernel", edit("{stride: 2,", "{kernel_size: [3, 4], stride: 2,"), 9,
     f"{AT}.stages[1][0].kernel_size", "kernel size 4 is even"),
    ("split-too-small", edit("{stride: 2, out_channels: 16}",
                             "{stride: 2, out_channels: 8, project_kernel_size: [1, 1, 1, 1, 1, 1, 1, 1, 1]}"),  # noqa: E501
     9, f"{AT}.stages[1][0].project_kernel_size", "out_channels (8) cannot split into 9"),
    ("se-rounds-to-nothing", edit("out_channels: 8}", "out_channels: 8, se: 0.1}"), 8,
     f"{AT}.stages[0].se", "rounds to no hidden channel"),
    ("unknown-key", edit("      stages:", "      stage:"), 7, f"{AT}.stage",
     "did you mean 'stages'"),
    ("bad-rounding", edit("      stages:", "      depth_rounding: floor\n      stages:"), 7,
     f"{AT}.depth_rounding", "'ceil' or 'round'"),
    ("no-drop-path", edit("      stages:", "      drop_path_rate: 0.1\n      stages:",
                          BODY.replace("ds_conv", "conv_bn_act")), 7,
     f"{AT}.drop_path_rate", "block 'conv_bn_act' has no field 'drop_path'"),
    ("empty", HEAD + "    block_stages: []\n", 5, AT, "at least 1 item"),
    ("layer-repeat", HEAD + "    repeat: 2\n" + BODY, 5, "layers[0].repeat",
     "block_stages takes `repeat` in each entry"),
    ("fixed-width", HEAD + "    fixed_width: 1\n" + BODY, 5, "layers[0].fixed_width",
     "fixed_width is true or false"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "line", "path", "fragment"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])  # fmt: skip
def test_a_mistake_is_one_located_line(tmp_path, capsys, doc, line, path, fragment):
    code, err, _ = validate(tmp_path, doc, capsys)
    assert code == 2
    got = parse(err)
    assert (int(got["line"]), got["path"]) == (line, path), err
    assert fragment in got["msg"], err


def test_the_good_body_validates(tmp_path, capsys):
    assert validate(tmp_path, HEAD + BODY, capsys)[0] == 0


def test_a_huge_stage_list_is_refused_before_it_is_expanded():
    doc = spec([{"block": "relu", "repeat": 1000}] * 64, depth_multiple=16.0)
    with pytest.raises(SpecError, match="1,024,000 blocks; a network has at most"):
        load_spec(doc)
