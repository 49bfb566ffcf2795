"""A timm user's habits: build keywords, the model API, feature extraction, and timm itself
as the reference where its models share a preset's layout (timm is a test dependency; nothing
is downloaded, no pretrained weights)."""

from __future__ import annotations

import copy
import pickle
import re
import shlex
from pathlib import Path

import pytest
import torch
from torch import nn

import nasblocks
from nasblocks import NasBlocksError, SpecError
from nasblocks.cli.main import main
from nasblocks.network import FeatureNetwork, Network

README = Path(__file__).resolve().parents[1] / "README.md"

# Presets whose timm model of the same name has the same feature levels; the ResNets name the
# stem's activation `relu` (torchvision's), timm `act1`.
SAME_LEVELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "inception_v3",
    "vgg11",
    "vgg16_bn",
    "vgg19",
]
SAME_KEYS = [n for n in SAME_LEVELS if not n.startswith("vgg")]  # timm's VGG has its own head
FULL = {"inception_v3": {"outputs": ["fc"]}}  # timm's Inception-v3 has no aux head


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm")


@pytest.mark.parametrize("name", SAME_LEVELS)
def test_feature_info_is_timms(timm, name):
    with torch.device("meta"):
        theirs = timm.create_model(name, features_only=True).feature_info
        ours = nasblocks.build(name, features_only=True).feature_info
    assert ours.channels() == theirs.channels()
    assert ours.reduction() == theirs.reduction()
    assert ours.out_indices == tuple(theirs.out_indices)
    renamed = [m.replace("act1", "relu") for m in theirs.module_name()]
    assert ours.module_name() == renamed


@pytest.mark.parametrize("name", SAME_KEYS)
def test_timms_state_dict_fits_the_preset_strictly(timm, name):
    with torch.device("meta"):
        theirs = timm.create_model(name)
        ours = nasblocks.build(name, **FULL.get(name, {}))
        their_features = timm.create_model(name, features_only=True)
        our_features = nasblocks.build(name, features_only=True)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in their_features.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in our_features.state_dict().items()}


@pytest.mark.parametrize(("name", "size"), [("resnet50", 64), ("inception_v3", 96)])
def test_with_timms_weights_the_outputs_and_maps_are_timms(timm, name, size):
    torch.manual_seed(0)
    theirs = timm.create_model(name).eval()
    their_features = timm.create_model(name, features_only=True).eval()
    state = theirs.state_dict()
    their_features.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    ours = nasblocks.build(name, **FULL.get(name, {})).eval()
    ours.load_state_dict(state, strict=True)
    our_features = nasblocks.build(name, features_only=True).eval()
    our_features.load_state_dict(their_features.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    exact = {"rtol": 0.0, "atol": 0.0}
    with torch.no_grad():
        for mine, timms in zip(our_features(x), their_features(x), strict=True):
            torch.testing.assert_close(mine, timms, **exact)
        torch.testing.assert_close(ours(x), theirs(x), **exact)
        feats = ours.forward_features(x)
        torch.testing.assert_close(feats, theirs.forward_features(x), **exact)
        for pre in (False, True):
            torch.testing.assert_close(
                ours.forward_head(feats, pre_logits=pre),
                theirs.forward_head(feats, pre_logits=pre),
                **exact,
            )
    for attr in ("num_features", "num_classes", "head_hidden_size", "drop_rate"):
        if hasattr(theirs, attr):  # (timm's Inception-v3 has no drop_rate)
            assert getattr(ours, attr) == getattr(theirs, attr), attr


# -- build keywords -----------------------------------------------------------------------------


def test_features_only_returns_the_chosen_maps_and_shares_the_full_networks_keys():
    torch.manual_seed(0)
    full = nasblocks.build("resnet18", input_size=64).eval()
    model = nasblocks.build("resnet18", input_size=64, features_only=True, out_indices=(-1, 2))
    assert isinstance(model, FeatureNetwork) and type(model).__name__ == "resnet18_features"
    info = model.feature_info
    assert info.out_indices == (2, 4) and info.channels() == [128, 512]
    assert info.reduction() == [8, 32] and info.module_name() == ["layer2", "layer4"]
    assert info.get_dicts(keys=["num_chs"]) == [{"num_chs": 128}, {"num_chs": 512}]
    assert info.channels(0) == 64 and len(info) == 5 and info[1]["module"] == "layer1"
    assert set(model.state_dict()) <= set(full.state_dict())
    assert not any(k.startswith("fc.") for k in model.state_dict())
    model.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("fc")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        layer2, layer4 = model.eval()(x)
        torch.testing.assert_close(layer4, full.forward_features(x), rtol=0, atol=0)
    assert layer2.shape == (2, 128, 8, 8)
    assert nasblocks.build(
        "resnet18", features_only=True, out_indices=2
    ).feature_info.out_indices == (3, 4)
    assert "getattr" not in model.code and "run_if_training" not in model.code  # plain calls
    assert torch.fx.symbolic_trace(model)(x)[1].shape == layer4.shape


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features_only": True, "out_indices": (5,)}, r"5 is not a feature level of resnet18"),
        ({"features_only": True, "out_indices": (1, -4)}, "level 1 is listed twice"),
        ({"features_only": True, "out_indices": ()}, "expected a tuple of level indices"),
        ({"features_only": True, "out_indices": 9}, "must be 1..5"),
        ({"out_indices": (1, 2)}, "add features_only=True"),
        ({"pretrained": True}, "weights='torchvision'"),
        ({"in_chans": 1, "in_channels": 1}, "in_chans is timm's word for in_channels"),
    ],
)
def test_wrong_keywords_are_one_line_errors(kwargs, message):
    with pytest.raises(SpecError, match=message) as info:
        nasblocks.build("resnet18", **kwargs)
    assert "\n" not in str(info.value) and isinstance(info.value, NasBlocksError)


def test_the_out_indices_error_lists_the_levels():
    with pytest.raises(SpecError) as info:
        nasblocks.build("resnet50", features_only=True, out_indices=(7,))
    assert "(0: relu 64@2, 1: layer1 256@4, 2: layer2 512@8" in str(info.value)


def test_pretrained_false_is_fine_and_in_chans_is_the_input_channels():
    model = nasblocks.build("resnet18", pretrained=False, in_chans=1)
    assert model.spec.input_shape[0] == 1 and model.conv1.in_channels == 1


def test_num_classes_zero_is_a_network_without_classifier():
    model = nasblocks.build("resnet18", num_classes=0, input_size=64).eval()
    assert isinstance(model.fc, nn.Identity) and model.num_classes == 0
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 512)


def test_weights_load_into_the_network_as_asked_for(tmp_path):
    full = nasblocks.build("resnet18", input_size=64)
    features = nasblocks.build("resnet18", input_size=64, features_only=True)
    headless = nasblocks.build("resnet18", input_size=64, num_classes=0)
    saved = (full, features, headless)  # a full checkpoint, a features-only one, a headless one
    for i, model in enumerate(saved):
        torch.save(model.state_dict(), tmp_path / f"{i}.pt")
        got = nasblocks.build(
            "resnet18", input_size=64, features_only=True, weights=tmp_path / f"{i}.pt"
        )
        torch.testing.assert_close(got.conv1.weight, model.conv1.weight)
    again = nasblocks.build("resnet18", input_size=64, num_classes=0, weights=tmp_path / "2.pt")
    torch.testing.assert_close(again.conv1.weight, headless.conv1.weight)
    with pytest.raises(SpecError, match="do not fit this network"):
        nasblocks.build("resnet34", features_only=True, weights=tmp_path / "0.pt")


# -- the model API ------------------------------------------------------------------------------


def test_the_model_api_of_a_preset():
    model = nasblocks.build("resnet18")
    assert isinstance(model, Network) and isinstance(model, torch.fx.GraphModule)
    assert (model.num_features, model.head_hidden_size, model.num_classes) == (512, 512, 1000)
    assert model.get_classifier() is model.fc and model.drop_rate == 0.0
    assert model.feature_info.channels() == [64, 64, 128, 256, 512]
    assert model.feature_info[-1] == {
        "num_chs": 512,
        "reduction": 32,
        "module": "layer4",
        "index": 4,
    }


def test_reset_classifier_replaces_the_fc_and_the_spec_follows():
    model = nasblocks.build("vgg11", input_size=32).eval()
    model.forward_features(torch.zeros(1, 3, 32, 32))  # generate the parts first
    model.reset_classifier(7)
    assert model.classifier[6].out_features == 7 and model.num_classes == 7
    assert model.spec.num_classes == 7 and model.spec.plan.out_shape == (7,)
    assert model.classifier[6].weight.std().item() == pytest.approx(0.01, rel=0.1)  # vgg init
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
        assert model.forward_head(model.forward_features(torch.zeros(2, 3, 32, 32))).shape == (
            2,
            7,
        )
    model.reset_classifier(0)
    assert isinstance(model.classifier[6], nn.Identity) and model.num_classes == 0
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4096)
    model.reset_classifier(3)  # back from Identity
    assert model.classifier[6].in_features == 4096 and model.num_classes == 3


def test_reset_classifier_keeps_the_spec_where_num_classes_means_more():
    model = nasblocks.build("googlenet")  # the aux heads use $num_classes too
    model.reset_classifier(10)
    assert model.fc.out_features == 10 and model.spec.num_classes == 1000


@pytest.mark.parametrize(
    ("name", "call", "message"),
    [
        ("unet", lambda m: m.reset_classifier(3), "no linear classifier"),
        ("resnet18", lambda m: m.reset_classifier(-1), "a class count >= 0"),
        ("resnet18", lambda m: m.reset_classifier(3, global_pool="max"), "pooling is part"),
    ],
)
def test_reset_classifier_errors_are_one_line(name, call, message):
    with torch.device("meta"):
        model = nasblocks.build(name)
    with pytest.raises(SpecError, match=message) as info:
        call(model)
    assert "\n" not in str(info.value)


def test_built_models_pickle_and_deep_copy_with_their_class_spec_and_parts():
    torch.manual_seed(0)
    model = nasblocks.build("resnet18", input_size=32).eval()
    features = nasblocks.build("resnet18", input_size=32, features_only=True, out_indices=(1, 3))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected, maps = model(x), features.eval()(x)
        head = model.forward_head(model.forward_features(x))
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert isinstance(twin, Network) and type(twin).__name__ == "resnet18"
        assert twin.spec == model.spec and twin.num_classes == 1000
        with torch.no_grad():
            torch.testing.assert_close(twin(x), expected, rtol=0, atol=0)
            torch.testing.assert_close(twin.forward_head(twin.forward_features(x)), head)
        twin.reset_classifier(2)  # the twin's own modules
        assert model.fc.out_features == 1000
    for ftwin in (pickle.loads(pickle.dumps(features)), copy.deepcopy(features)):
        assert isinstance(ftwin, FeatureNetwork) and ftwin.feature_info == features.feature_info
        assert ftwin.spec == features.spec
        with torch.no_grad():
            for a, b in zip(ftwin(x), maps, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_parts_call_the_modules_the_network_has_now():
    model = nasblocks.build("resnet18", input_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model.forward_features(x)
        model.layer4 = nn.Identity()  # swapped after the parts were generated
        assert model.forward_features(x).shape == (1, 256, 2, 2)


# -- presets by pattern -------------------------------------------------------------------------


def test_list_presets_filters_like_timms_list_models():
    every = nasblocks.preset_names()
    assert nasblocks.list_presets() == every
    resnets = nasblocks.list_presets("resnet*")
    assert "resnet50" in resnets and "se_resnet50" not in resnets
    assert resnets == sorted(resnets, key=nasblocks.presets.natural_key)  # timm's order
    assert set(nasblocks.list_presets(["vgg1?", "*_bn"])) >= {"vgg11", "vgg16", "vgg16_bn"}
    assert nasblocks.list_presets("nothing*") == []


def test_the_presets_command_takes_a_pattern(capsys):
    assert main(["presets", "vgg1?_bn"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert main(["presets", "resnt50"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no preset matches 'resnt50' (did you mean 'resnet50'" in err and "\n" not in err


# -- the README's "Coming from timm" section, run as written ------------------------------------


def _section_blocks(title: str) -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```(\w+)\n(.*?)```", text[start:end], flags=re.S)


def test_the_readme_section_runs(capsys):
    blocks = _section_blocks("Coming from timm")
    assert [lang for lang, _ in blocks] == ["python", "bash"]
    for lang, code in blocks:
        if lang == "python":
            scope: dict = {}
            exec(compile(code, "README.md", "exec"), scope)
            out = capsys.readouterr().out
            assert "[256, 512, 1024, 2048] [4, 8, 16, 32]" in out
            assert [tuple(m.shape) for m in scope["maps"]][0] == (1, 256, 56, 56)
            assert tuple(scope["features"].shape) == (2, 2048, 7, 7)
            assert tuple(scope["pooled"].shape) == (2, 2048)
            assert scope["model"].num_classes == 5 and scope["model"].spec.num_classes == 5
            assert scope["model"].drop_rate == pytest.approx(0.2)
        else:
            for line in code.strip().splitlines():
                argv = shlex.split(line, comments=True)
                assert argv[0] == ".venv/bin/nasblocks"
                assert main(argv[1:]) == 0
