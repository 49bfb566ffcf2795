"""Feature levels, the features/head split and the classifier, read off the shape plan
(nasblocks/features.py), for every preset and for general layer lists."""

from __future__ import annotations

import pytest
import torch

import nasblocks
from nasblocks import SpecError
from nasblocks.features import FeatureInfo, drop_rate_overrides, layout
from nasblocks.presets import preset_names

GROW = 256  # a second input this much larger: every map grows by GROW / reduction


def _input(spec, grow: int = 0) -> torch.Tensor:
    c, h, w = spec.input_shape
    return torch.empty(1, c, h + grow, w + grow, device="meta")


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_has_levels_whose_maps_match_feature_info(name):
    if not layout(nasblocks.load_spec(name)).levels:  # an MLP (mnist_fc): no maps at all
        with pytest.raises(SpecError, match="no feature maps"):
            nasblocks.build(name, features_only=True)
        return
    with torch.device("meta"):
        model = nasblocks.build(name, features_only=True).eval()
    info = model.feature_info
    assert len(info) >= 3 and info.out_indices == tuple(range(len(info)))
    reductions = info.reduction()
    assert reductions == sorted(set(reductions))  # strictly rising, as timm asserts
    maps, grown = model(_input(model.spec)), model(_input(model.spec, GROW))
    assert isinstance(maps, list) and len(maps) == len(info)
    for fmap, bigger, d in zip(maps, grown, info.get_dicts(), strict=True):
        assert fmap.shape[1] == d["num_chs"]
        assert bigger.shape[2] - fmap.shape[2] == GROW // d["reduction"], d
        assert isinstance(model.get_submodule(d["module"]), torch.nn.Module)


@pytest.mark.parametrize("name", preset_names())
def test_forward_head_after_forward_features_is_forward(name):
    with torch.device("meta"):
        model = nasblocks.build(name).eval()
    x = _input(model.spec)
    if model.num_features is None:  # no feature map: the whole network is a head
        with pytest.raises(SpecError, match="no feature map"):
            model.forward_features(x)
        return
    out, feats = model(x), model.forward_features(x)
    assert feats.shape[1] == model.num_features
    assert model.forward_head(feats).shape == out.shape
    assert model.forward_head(feats, pre_logits=True).shape[1] == model.head_hidden_size


def test_forward_head_computes_forward_and_pre_logits_stop_before_the_classifier():
    torch.manual_seed(0)
    for name in ("vgg_cifar", "mnist_cnn", "mobilenet_v2"):
        model = nasblocks.build(name).eval()
        x = torch.randn(2, *model.spec.input_shape)
        with torch.no_grad():
            feats = model.forward_features(x)
            torch.testing.assert_close(model.forward_head(feats), model(x), rtol=0, atol=0)
            pre = model.forward_head(feats, pre_logits=True)
            logits = model.get_classifier()(pre)
        if name != "mnist_cnn":  # (its classifier is followed by log_softmax)
            torch.testing.assert_close(logits, model(x), rtol=0, atol=0)


def test_the_levels_of_known_layouts():
    modules = _modules
    assert modules("resnet50") == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert modules("vgg16") == [f"features.{i}" for i in (3, 8, 15, 22, 29, 30)]
    assert modules("inception_v3") == [  # transform_input has the input's shape: no level
        "Conv2d_2b_3x3",
        "Conv2d_4a_3x3",
        "Mixed_5d",
        "Mixed_6e",
        "Mixed_7c",
    ]
    assert modules("unet") == ["conv1", "conv2", "conv3", "conv4", "center"]  # no decoder
    assert modules("mobilenet_v2")[0] == "features.1"


def _modules(name: str) -> list[str]:
    return FeatureInfo(layout(nasblocks.load_spec(name)).feature_dicts()).module_name()


def test_general_layer_lists_nested_groups_repeats_and_references():
    spec = {
        "name": "general",
        "input": [3, 32, 32],
        "num_classes": 7,
        "layers": [
            {"name": "stem", "conv": {"out_channels": 8, "stride": 2}},
            {
                "name": "body",  # a group whose resolution changes inside: opened
                "layers": [
                    {"name": "a", "conv": 16},
                    {"name": "b", "conv": {"out_channels": 16, "stride": 2}},
                    {"name": "c", "conv": 16, "from": "b"},
                    {"name": "d", "add": ["b", "c"]},  # not a chain: a GraphModule
                ],
            },
            {"name": "deep", "layers": [{"conv": 16}, "relu"], "repeat": 2},  # one level
            {"name": "down", "maxpool": 2, "repeat": 2},  # repeated, opened: down.0, down.1
            {"name": "head", "classifier": {"num_classes": 7, "dropout": 0.1}},
        ],
    }
    model = nasblocks.build(spec).eval()
    info = model.feature_info
    assert info.module_name() == ["body.a", "deep", "down.0", "down.1"]
    assert info.reduction() == [2, 4, 8, 16] and info.channels() == [16, 16, 16, 16]
    assert model.num_features == 16 and model.get_classifier() is model.head.fc
    x = torch.randn(2, 3, 32, 32)
    features = nasblocks.build(spec, features_only=True, out_indices=(0, -1)).eval()
    features.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        maps = features(x)
        assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 16, 2, 2)]
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(model.head.fc(pre), model(x))  # the classifier block's steps
    assert model.drop_rate == pytest.approx(0.1)


def test_the_body_group_opens_and_its_graph_children_are_called():
    spec = {
        "input": [3, 16, 16],
        "layers": [
            {
                "name": "body",
                "layers": [
                    {"name": "a", "conv": 8},
                    {"name": "b", "conv": {"out_channels": 8, "stride": 2}},
                    {"name": "c", "add": ["b", -1]},
                ],
            },
            {"global_avgpool": {"flatten": True}},
            {"name": "fc", "linear": 3},
        ],
    }
    lay = layout(nasblocks.load_spec(spec))
    assert [op.path for op in lay.ops] == ["body.a", "body.b", "body.c", "1", "fc"]
    assert [lay.ops[i].path for i in lay.levels] == ["body.a", "body.c"]


def test_a_classifier_block_is_a_head_with_a_pre_logits_step():
    # nasblocks.modules.core.ClassifierHead's forward is pool -> flatten -> dropout -> fc:
    # features.py relies on it to stop before the fc.
    from nasblocks.modules.core import ClassifierHead

    head = ClassifierHead(8, 3, dropout=0.0).eval()
    x = torch.randn(2, 8, 4, 4)
    chained = head.fc(head.dropout(head.flatten(head.pool(x))))
    torch.testing.assert_close(head(x), chained, rtol=0, atol=0)


def test_a_network_without_maps_has_no_features():
    spec = {"input": [1, 4, 4], "layers": ["flatten", {"name": "fc", "linear": 2}]}
    with pytest.raises(SpecError, match="no feature maps"):
        nasblocks.build(spec, features_only=True)
    model = nasblocks.build(spec)
    with pytest.raises(SpecError, match="no feature map"):
        model.forward_features(torch.zeros(1, 1, 4, 4))


def test_a_head_that_reads_an_earlier_map_cannot_be_split():
    spec = {
        "input": [3, 16, 16],
        "layers": [
            {"name": "a", "conv": 8},
            {"name": "b", "conv": {"out_channels": 8, "stride": 2}},
            {"name": "pa", "global_avgpool": {"flatten": True}, "from": "a"},
            {"name": "pb", "global_avgpool": {"flatten": True}, "from": "b"},
            {"name": "sum", "add": ["pa", "pb"]},
            {"name": "fc", "linear": 3},
        ],
    }
    model = nasblocks.build(spec)
    x = torch.randn(1, 3, 16, 16)
    assert model.forward_features(x).shape == (1, 8, 8, 8)
    with pytest.raises(SpecError, match="cannot start from that map alone"):
        model.forward_head(model.forward_features(x))


# -- drop_rate ----------------------------------------------------------------------------------


def test_drop_rate_writes_the_dropout_before_the_classifier_into_the_spec():
    resnet = nasblocks.build("resnet18", drop_rate=0.3)
    assert resnet.drop_rate == pytest.approx(0.3) and resnet.spec.doc.head.dropout == 0.3
    plain = nasblocks.build("resnet18")
    assert resnet.state_dict().keys() == plain.state_dict().keys()
    vgg = nasblocks.build("vgg11", drop_rate=0.1)
    assert vgg.classifier[5].p == pytest.approx(0.1) and vgg.classifier[2].p == 0.5
    mobile = nasblocks.build("mobilenet_v2", drop_rate=0.0)
    assert mobile.drop_rate == 0.0


def test_drop_rate_inserts_a_dropout_where_that_renames_nothing():
    shuffle = nasblocks.build("shufflenet_v2_x0_5", drop_rate=0.25)
    assert isinstance(shuffle.dropout, torch.nn.Dropout) and shuffle.drop_rate == 0.25
    assert shuffle.state_dict().keys() == nasblocks.build("shufflenet_v2_x0_5").state_dict().keys()
    assert drop_rate_overrides(nasblocks.load_spec("shufflenet_v2_x0_5"), 0.0) == {}


@pytest.mark.parametrize(
    ("name", "rate", "message"),
    [
        ("unet", 0.2, "no linear classifier"),
        ("mnist_cnn", 0.2, "inserting one would rename or rewire"),
        ("resnet18", 1.5, r"probability in \[0, 1\)"),
        ("resnet18", "0.2", r"probability in \[0, 1\)"),
    ],
)
def test_drop_rate_that_cannot_be_set_is_one_line(name, rate, message):
    with pytest.raises(SpecError, match=message) as info:
        nasblocks.build(name, drop_rate=rate)
    assert "\n" not in str(info.value) and "drop_rate" in str(info.value)


def test_drop_rate_in_a_template_is_refused():
    spec = {
        "input": [3, 8, 8],
        "templates": {"head": {"layers": [{"dropout": 0.5}, {"name": "fc", "linear": 3}]}},
        "layers": [{"conv": 4}, {"global_avgpool": {"flatten": True}}, "head"],
    }
    with pytest.raises(SpecError, match="generated by sugar or a template"):
        nasblocks.build(spec, drop_rate=0.1)
