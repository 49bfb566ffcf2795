"""Hostile input: layer names that would inject code or shadow module attributes, spec
plugins without opt-in, malicious weight pickles. Each is refused with one located line and
nothing it names is ever run."""

from __future__ import annotations

import json
import pickle
import re
import sys

import pytest
import torch

import nasblocks
from nasblocks.cli.main import main
from nasblocks.errors import NasBlocksError, SpecError


def injection(marker) -> str:
    return f'c1")(c1)\nfrom os import system\nsystem("touch {marker}")\nb = getattr(self, "c1'


HOSTILE = {
    "injection": None,  # filled in with a tmp_path marker
    "def": "def",
    "self": "self",
    "training": "training",
    "forward": "forward",
    "dunder-class": "__class__",
    "quote": "a'b",
    "meta": "meta",
    "dotted-dunder": "x.__dict__",  # (a dotted name is a container path: each part checked)
    "dotted-reserved": "x.forward",
    "dotted-empty": "x.",
    "unicode": "é",
    "empty": "",
    "too-long": "a" * 65,
}


def spec_text(name: str) -> str:
    # json.dumps gives a YAML-compatible double-quoted scalar for any string
    return (
        "name: t\ninput: [3, 8, 8]\nlayers:\n"
        f"  - {{name: {json.dumps(name)}, conv: 4}}\n"
        "  - global_avgpool: {flatten: true}\n"
        "  - linear: 3\n"
    )


def located(err: str, file) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert re.match(rf"^{re.escape(str(file))}:\d+:\d+: ", lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "MARKER"


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_layer_name_is_refused(tmp_path, capsys, marker, case):
    name = injection(marker) if case == "injection" else HOSTILE[case]
    file = tmp_path / "spec.yaml"
    file.write_text(spec_text(name))
    capsys.readouterr()
    assert main(["validate", str(file)]) == 2
    line = located(capsys.readouterr().err, file)
    assert re.match(rf"^{re.escape(str(file))}:\d+:\d+: layers\[0\]\.name: ", line), line
    assert main(["summary", str(file)]) == 2
    located(capsys.readouterr().err, file)
    with pytest.raises(SpecError):
        nasblocks.build(file)
    with pytest.raises(SpecError):
        nasblocks.build(str(file))
    assert not marker.exists()


def test_hostile_name_in_a_dict_spec(marker):
    spec = {"name": "t", "input": [3, 8, 8], "layers": [{"name": injection(marker), "conv": 4}]}
    with pytest.raises(SpecError, match=r"layers\[0\]\.name"):
        nasblocks.build(spec)
    assert not marker.exists()


@pytest.mark.parametrize(
    "bad",
    [
        "bad name",
        pytest.param('a")\nimport os\n#', id="newline"),
        "def",
        "forward",
        "",
    ],
)
def test_hostile_output_name_is_refused(tmp_path, capsys, bad):
    file = tmp_path / "spec.yaml"
    file.write_text(
        "name: t\ninput: [3, 8, 8]\nlayers:\n"
        "  - {name: body, conv: 4}\n"
        "  - global_avgpool: {flatten: true}\n"
        "  - {name: fc, linear: 3}\n"
        f"outputs: {{{json.dumps(bad)}: fc}}\n"
    )
    capsys.readouterr()
    assert main(["validate", str(file)]) == 2
    line = located(capsys.readouterr().err, file)
    assert ": outputs" in line, line
    with pytest.raises(SpecError):
        nasblocks.build(file)


BENIGN = ["x", "torch", "getattr", "print", "match", "pack_outputs", "run_if_training", "input_1"]


@pytest.mark.parametrize("name", BENIGN)
def test_tricky_but_legal_names_work(name):
    spec = {
        "name": "t",
        "input": [3, 8, 8],
        "outputs": [name + "_fc", name],
        "layers": [
            {"name": "body", "conv": 4},
            {"name": name, "classifier": 2, "aux": True, "from": "body"},
            {"name": "pool", "global_avgpool": {"flatten": True}, "from": "body"},
            {"name": name + "_fc", "linear": 3},
        ],
    }
    model = nasblocks.build(spec)
    x = torch.randn(1, 3, 8, 8)
    assert model.eval()(x).shape == (1, 3)
    out = model.train()(x)
    assert getattr(out, name + "_fc").shape == (1, 3)
    assert getattr(out, name).shape == (1, 2)
    # and as the main chain's layer, referenced by name
    chain = {
        "name": "t",
        "input": [3, 8, 8],
        "layers": [
            {"name": name, "conv": 4},
            {"conv": 4, "from": name},
            {"add": [-1, name]},
            {"global_avgpool": {"flatten": True}},
            {"linear": 3},
        ],
    }
    model = nasblocks.build(chain)
    assert model.eval()(x).shape == (1, 3)
    assert model.train()(x).shape == (1, 3)


def _public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_reserved_names_cover_module_attributes():
    """Torch's module attributes and those of nasblocks' networks (timm's API: a layer named
    ``forward_head`` would be shadowed by the method, silently)."""
    from torch import fx, nn

    from nasblocks.network import FeatureNetwork, Network
    from nasblocks.spec.names import NETWORK_NAMES, RESERVED_NAMES

    features = nasblocks.build(
        {"name": "f", "input": [3, 8, 8], "layers": [{"name": "c", "conv": 4}]}, features_only=True
    )
    public = (
        _public(fx.GraphModule(nn.Module(), fx.Graph()))
        | _public(nn.Sequential())
        | _public(nn.Module())
        | _public(Network)
        | _public(FeatureNetwork)
        | (_public(features) - {"c"})
    )
    missing = sorted(public - RESERVED_NAMES - NETWORK_NAMES)
    assert not missing, f"RESERVED_NAMES lacks {missing}"


def test_export_refuses_hostile_name(tmp_path, capsys, marker):
    file = tmp_path / "spec.yaml"
    file.write_text(spec_text(injection(marker)))
    out = tmp_path / "out.yaml"
    capsys.readouterr()
    assert main(["export", str(file), "-o", str(out)]) == 2
    located(capsys.readouterr().err, file)
    assert not out.exists() or out.read_text() == ""
    assert not marker.exists()


HOSTILE_SPACE = """
name: tiny
input: [1, 8, 8]
num_classes: 4
layers:
  - {{name: {name}, conv: {{choice: [4, 8]}}}}
  - global_avgpool: {{flatten: true}}
  - linear: 4
search:
  data: {{dataset: synthetic, synthetic_size: 240, synthetic_shape: [1, 8, 8],
         synthetic_classes: 4}}
  train: {{batch_size: 32, lr: 0.1, max_train_batches: 3, device: cpu}}
  budget: {{trials: 3, epochs: 2}}
  sampler: random
  pruner: none
"""


@pytest.mark.parametrize("case", ["injection", "forward", "def"])
def test_search_refuses_hostile_name(tmp_path, capsys, marker, case):
    name = injection(marker) if case == "injection" else HOSTILE[case]
    space = tmp_path / "space.yaml"
    space.write_text(HOSTILE_SPACE.lstrip().format(name=json.dumps(name)))
    capsys.readouterr()
    assert main(["search", str(space), "--out", str(tmp_path / "o"), "-q"]) == 2
    located(capsys.readouterr().err, space)
    assert not marker.exists()


def test_search_space_sanity(tmp_path, capsys):
    """The space above is valid with a plain name, so the refusals are about the name."""
    space = tmp_path / "space.yaml"
    space.write_text(HOSTILE_SPACE.lstrip().format(name="c1"))
    from nasblocks.space import load_space

    load_space(space)


# -- plugins --------------------------------------------------------------------------------

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from pydantic import Field
from torch import nn
from nasblocks import BlockSpec, register_block


@register_block("evil_block_xyz")
class EvilSpec(BlockSpec):
    \"\"\"Identity.\"\"\"

    module = nn.Identity
    shorthand = "k"
    k: int = Field(1, ge=1, description="Unused.")

    def output_shape(self, in_shape):
        return in_shape

    def kwargs(self, in_shape):
        return {{}}
"""


@pytest.fixture
def evil_spec(tmp_path, marker):
    from nasblocks import plugins, registry

    (tmp_path / "evil.py").write_text(EVIL.format(marker=str(marker)))
    file = tmp_path / "net.yaml"
    file.write_text("name: p\ninput: [3, 8, 8]\nplugins: [evil.py]\nlayers:\n  - relu\n")
    before_loaded = dict(plugins._loaded)
    before_reg = dict(registry._REGISTRY)
    before_mods = set(sys.modules)
    plugins.allow_spec_plugins(False)
    yield file
    plugins.allow_spec_plugins(False)
    plugins._loaded.clear()
    plugins._loaded.update(before_loaded)
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before_reg)
    for mod in set(sys.modules) - before_mods:
        if mod.startswith("nasblocks_plugin_"):
            del sys.modules[mod]


def test_spec_plugins_need_opt_in(evil_spec, capsys, marker):
    capsys.readouterr()
    for cmd in ("validate", "summary"):
        assert main([cmd, str(evil_spec)]) == 2
        line = located(capsys.readouterr().err, evil_spec)
        assert "plugins" in line and "--allow-plugins" in line, line
    with pytest.raises(SpecError, match="--allow-plugins"):
        nasblocks.build(evil_spec)
    assert not marker.exists()


def test_spec_plugins_load_with_opt_in(evil_spec, capsys, marker):
    assert main(["--allow-plugins", "validate", str(evil_spec)]) == 0, capsys.readouterr().err
    assert marker.exists()


def test_allowed_but_missing_plugin_is_one_line(evil_spec, capsys):
    evil_spec.write_text("name: p\ninput: [3, 8, 8]\nplugins: [nope_xyz.py]\nlayers: [relu]\n")
    capsys.readouterr()
    assert main(["--allow-plugins", "validate", str(evil_spec)]) == 2
    line = located(capsys.readouterr().err, evil_spec)
    assert "plugins[0]" in line and "not found" in line, line


def test_opt_in_does_not_leak_between_tests(evil_spec, marker):
    """The fixture reset the process-wide flag an earlier --allow-plugins test set."""
    with pytest.raises(SpecError, match="--allow-plugins"):
        nasblocks.build(evil_spec)
    assert not marker.exists()


def test_build_allow_plugins_argument(evil_spec, marker):
    nasblocks.build(evil_spec, allow_plugins=True)
    assert marker.exists()


# -- weights --------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("layout", ["bare", "state_dict"])
def test_malicious_weights_pickle_is_not_run(tmp_path, marker, layout):
    path = tmp_path / "w.pt"
    payload = {"conv1.weight": _Evil(marker)}
    torch.save(payload if layout == "bare" else {"state_dict": payload}, path)
    with pytest.raises(NasBlocksError):
        nasblocks.build("mnist_cnn", weights=path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_malicious_pickle_is_not_run(tmp_path, marker):
    path = tmp_path / "w.pt"
    path.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(NasBlocksError):
        nasblocks.build("mnist_cnn", weights=str(path))
    assert not marker.exists()
