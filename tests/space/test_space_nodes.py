"""Search nodes: parsing, names, labels, conditional sub-spaces, located errors."""

from __future__ import annotations

import textwrap

import pytest

from nasblocks.errors import SpecError
from nasblocks.space import (
    Choice,
    FirstSource,
    FixedSource,
    FloatRange,
    IntRange,
    RandomSource,
    load_space,
)


def write(tmp_path, text: str, name: str = "space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BASIC = """
name: tiny
stem: {out_channels: {choice: [8, 16]}, kernel_size: 3, stride: 1, pool: none}
stages:
  block: {choice: [basic, bottleneck]}
  layers: [{int: [1, 3]}, {int: [0, 4], step: 2}]
  widths: [8, 16]
head: {dropout: {float: [0.0, 0.5], step: 0.25}}
search:
  train:
    lr: {float: [1.0e-3, 1.0e-1], log: true}
    augment: {flip: true, crop_padding: {choice: [0, 2]}}
"""


def test_every_node_kind_parses_with_its_yaml_path_as_name(tmp_path):
    space = load_space(write(tmp_path, BASIC))
    by_name = {n.name: n for n in space.nodes}
    assert list(by_name) == [
        "stem.out_channels",
        "stages.block",
        "stages.layers[0]",
        "stages.layers[1]",
        "head.dropout",
        "train.lr",
        "train.augment.crop_padding",
    ]
    assert by_name["stages.block"] == Choice(
        "stages.block", ("stages", "block"), ("basic", "bottleneck"), ("basic", "bottleneck")
    )
    assert by_name["stages.layers[1]"] == IntRange(
        "stages.layers[1]", ("stages", "layers", 1), 0, 4, 2, False
    )
    lr = by_name["train.lr"]
    assert isinstance(lr, FloatRange) and lr.log and (lr.low, lr.high) == (1e-3, 1e-1)
    assert by_name["head.dropout"].grid() == [0.0, 0.25, 0.5]
    assert by_name["stages.layers[1]"].grid() == [0, 2, 4]


def test_sampling_replaces_nodes_and_keeps_everything_else(tmp_path):
    space = load_space(write(tmp_path, BASIC))
    params = {
        "stem.out_channels": 16,
        "stages.block": "bottleneck",
        "stages.layers[0]": 2,
        "stages.layers[1]": 4,
        "head.dropout": 0.25,
        "train.lr": 0.01,
        "train.augment.crop_padding": 2,
    }
    sample = space.sample(FixedSource(params))
    assert sample.spec == {
        "name": "tiny",
        "stem": {"out_channels": 16, "kernel_size": 3, "stride": 1, "pool": "none"},
        "stages": {"block": "bottleneck", "layers": [2, 4], "widths": [8, 16]},
        "head": {"dropout": 0.25},
    }
    assert sample.train == {"lr": 0.01, "augment": {"flip": True, "crop_padding": 2}}
    assert sample.params == params
    assert "search" not in sample.spec


def test_random_source_is_deterministic_and_respects_bounds(tmp_path):
    space = load_space(write(tmp_path, BASIC))
    draws = [space.sample(RandomSource(seed=7)).params for _ in range(2)]
    assert draws[0] == draws[1]
    others = [space.sample(RandomSource(seed=s)).params for s in range(30)]
    assert len({tuple(sorted(p.items())) for p in others}) > 20
    for p in others:
        assert 1 <= p["stages.layers[0]"] <= 3
        assert p["stages.layers[1]"] in (0, 2, 4)
        assert 1e-3 <= p["train.lr"] <= 1e-1
    assert space.sample(FirstSource()).params["stages.block"] == "basic"


def test_label_shares_one_value_across_places(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """
        name: labels
        stages:
          layers: [1, 1]
          widths: [{choice: [8, 16], label: width}, {choice: [8, 16], label: width}]
          groups: 1
    """,
        )
    )
    assert [n.name for n in space.nodes] == ["width"]
    for seed in range(10):
        sample = space.sample(RandomSource(seed))
        w = sample.spec["stages"]["widths"]
        assert w[0] == w[1] and sample.params == {"width": w[0]}


def test_labels_with_different_definitions_are_refused_where_the_second_is(tmp_path):
    path = write(
        tmp_path,
        """
        name: labels
        stages:
          layers: [1, 1]
          widths: [{choice: [8, 16], label: width},
                   {choice: [8, 32], label: width}]
    """,
    )
    with pytest.raises(SpecError) as e:
        load_space(path)
    assert (e.value.line, e.value.column) == (5, 12)
    assert e.value.path == ("stages", "widths", 1)
    assert "defined differently" in str(e.value) and str(path) in str(e.value)


def test_choice_between_mappings_is_a_conditional_subspace(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """
        name: cond
        layers:
          - choice:
              - {conv: {out_channels: {int: [4, 8]}, kernel_size: 3}}
              - {separable: {out_channels: {int: [4, 8]}, kernel_size: {choice: [3, 5]}}}
              - identity
          - {classifier: 10}
    """,
        )
    )
    names = [n.name for n in space.nodes]
    assert names == [
        "layers[0]",
        "layers[0].choice[0].conv.out_channels",
        "layers[0].choice[1].separable.out_channels",
        "layers[0].choice[1].separable.kernel_size",
    ]
    choice = space.node("layers[0]")
    assert choice.labels == ("#0:conv", "#1:separable", "identity")
    # Only the chosen branch is asked for: the other branch's names need no value.
    sample = space.sample(
        FixedSource(
            {
                "layers[0]": "#1:separable",
                "layers[0].choice[1].separable.out_channels": 6,
                "layers[0].choice[1].separable.kernel_size": 5,
            }
        )
    )
    assert sample.spec["layers"][0] == {"separable": {"out_channels": 6, "kernel_size": 5}}
    assert set(sample.params) == {
        "layers[0]",
        "layers[0].choice[1].separable.out_channels",
        "layers[0].choice[1].separable.kernel_size",
    }
    plain = space.sample(FixedSource({"layers[0]": "identity"}))
    assert plain.spec["layers"][0] == "identity" and plain.params == {"layers[0]": "identity"}


def test_list_options_get_readable_labels_and_names_override_them(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """
        name: depth
        stages:
          layers: {choice: [[1, 1], [2, 2, 2]]}
          widths: {choice: [[8, 16], [8, 16, 32]], names: [narrow, wide]}
    """,
        )
    )
    assert space.node("stages.layers").labels == ("[1,1]", "[2,2,2]")
    assert space.node("stages.widths").labels == ("narrow", "wide")
    s = space.sample(FixedSource({"stages.layers": "[2,2,2]", "stages.widths": "wide"}))
    assert s.spec["stages"] == {"layers": [2, 2, 2], "widths": [8, 16, 32]}


@pytest.mark.parametrize(
    ("node", "path", "message"),
    [
        ("{int: [4, 1]}", ("x", "int"), "low 4 is above high 1"),
        ("{int: [1, 4], step: 2}", ("x", "int"), "not a multiple of step 2"),
        ("{int: [1.5, 4]}", ("x", "int"), "whole numbers"),
        ("{float: [0.0, 1.0], log: true}", ("x", "float"), "needs low > 0"),
        ("{float: [1.0, 1.0]}", ("x", "float"), "low < high"),
        ("{float: [0.1, 1.0], log: true, step: 0.1}", ("x", "step"), "cannot be combined"),
        ("{int: 3}", ("x", "int"), "takes [low, high]"),
        ("{choice: []}", ("x", "choice"), "non-empty list"),
        ("{choice: [1, 2, 1]}", ("x", "choice", 2), "repeats option 0"),
        ("{choice: [1, 2], step: 1}", ("x", "step"), "unknown key 'step'"),
        ("{choice: [1], int: [1, 2]}", ("x",), "one of choice/int/float"),
        ("{int: [1, 2], label: 3}", ("x", "label"), "non-empty name"),
        ("{choice: [a, b], names: [x]}", ("x", "names"), "list of 2 option names"),
    ],
)
def test_bad_nodes_are_located_errors(tmp_path, node, path, message):
    file = write(tmp_path, f"name: bad\nlayers: [{{classifier: 10}}]\nx: {node}\n")
    with pytest.raises(SpecError) as e:
        load_space(file)
    assert e.value.path == path
    assert message in e.value.message
    assert e.value.file == str(file) and e.value.line == 3


def test_nodes_outside_spec_and_train_are_refused(tmp_path):
    file = write(
        tmp_path,
        """
        name: bad
        layers: [{classifier: 10}]
        search:
          budget: {trials: {int: [1, 5]}}
    """,
    )
    with pytest.raises(SpecError, match="spec and in search.train only") as e:
        load_space(file)
    assert e.value.line == 4


def test_grid_needs_finite_nodes(tmp_path):
    file = write(
        tmp_path,
        """
        name: grid
        layers: [{classifier: 10}]
        search:
          sampler: grid
          train: {lr: {float: [0.01, 0.1]}}
    """,
    )
    with pytest.raises(SpecError, match="needs a finite set") as e:
        load_space(file)
    assert e.value.path == ("search", "train", "lr")
    space = load_space(file, {"search.train.lr": {"float": [0.01, 0.03], "step": 0.01}})
    assert space.grid() == {"train.lr": [0.01, 0.02, 0.03]}


def test_overrides_fix_nodes_and_settings(tmp_path):
    space = load_space(
        write(tmp_path, BASIC),
        {"stages.block": "basic", "search.budget.trials": 3, "search.sampler": "random"},
    )
    assert "stages.block" not in [n.name for n in space.nodes]
    assert space.sample(FirstSource()).spec["stages"]["block"] == "basic"
    assert space.settings.budget.trials == 3 and space.settings.sampler.name == "random"


def test_fixed_source_refuses_values_outside_the_node(tmp_path):
    space = load_space(write(tmp_path, BASIC))
    with pytest.raises(SpecError, match="not one of"):
        space.sample(FixedSource({"stem.out_channels": 12}))
    with pytest.raises(SpecError, match="no value given"):
        space.sample(FixedSource({}))
