"""The search: section: defaults, objectives and directions, located errors."""

from __future__ import annotations

import textwrap

import pytest

from nasblocks.errors import SpecError
from nasblocks.space import SearchSettings, load_space


def space(tmp_path, search: str):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nlayers: [{classifier: 10}]\nsearch:\n"
        + textwrap.indent(textwrap.dedent(search).strip(), "  ")
        + "\n"
    )
    return path


def test_defaults():
    s = SearchSettings()
    assert s.data.dataset == "digits" and s.budget.trials == 20 and s.budget.epochs == 3
    assert s.sampler.name == "tpe" and s.pruner.name == "median" and s.seed == 0
    assert s.directions() == [("val_acc", "maximize")] and not s.multi_objective


def test_objectives_list_uses_natural_directions_and_mapping_gives_them(tmp_path):
    s = load_space(space(tmp_path, "objectives: [val_acc, params, latency_ms]")).settings
    assert s.directions() == [
        ("val_acc", "maximize"),
        ("params", "minimize"),
        ("latency_ms", "minimize"),
    ]
    assert s.multi_objective and s.needs_latency
    s = load_space(space(tmp_path, "objectives: {val_acc: maximize, flops: minimize}")).settings
    assert s.directions() == [("val_acc", "maximize"), ("flops", "minimize")]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("objectives: [params]", ("search", "objectives"), "val_acc must be one of"),
        ("objectives: [val_acc, val_acc]", ("search", "objectives"), "listed twice"),
        ("objectives: [val_acc, size]", ("search", "objectives", 1), "Input should be"),
        ("sampler: bayes", ("search", "sampler", "name"), "'tpe'"),
        (
            "pruner: {name: median, patience: 3}",
            ("search", "pruner", "patience"),
            "unknown field 'patience'",
        ),
        ("budget: {trails: 3}", ("search", "budget", "trails"), "did you mean 'trials'"),
        ("budget: {trials: 0}", ("search", "budget", "trials"), "greater than or equal to 1"),
        ("data: {input_size: [8, 8, 8]}", ("search", "data", "input_size"), "[H, W]"),
        (
            "constraints: {max_params: -1}",
            ("search", "constraints", "max_params"),
            "greater than 0",
        ),
        ("train: {epoch: 3}", ("search", "train", "epoch"), "did you mean 'epochs'"),
    ],
)
def test_bad_settings_are_located(tmp_path, text, path, message):
    file = space(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_space(file)
    assert e.value.path == path and message in e.value.message
    assert e.value.file == str(file) and e.value.line >= 4


def test_sampler_and_pruner_short_forms(tmp_path):
    s = load_space(space(tmp_path, "sampler: evolution\npruner: null")).settings
    assert s.sampler.name == "evolution" and s.pruner.name == "none"
    s = load_space(space(tmp_path, "sampler: {name: tpe, n_startup_trials: 4}")).settings
    assert s.sampler.n_startup_trials == 4
