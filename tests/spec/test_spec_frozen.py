"""A Spec is frozen all the way, and its shape plan is made once."""

from __future__ import annotations

import importlib

import pytest

from nasblocks import build
from nasblocks.spec import load_spec, plan


def test_the_document_cannot_be_changed_through_the_spec():
    spec = load_spec("resnet18")
    raw = spec.raw
    raw["name"] = "changed"
    raw["stages"]["layers"][0] = 99
    assert spec.raw["name"] == "resnet18" and spec.raw["stages"]["layers"][0] == 2
    with pytest.raises(TypeError):
        spec.positions[("name",)] = None  # read-only


def test_a_spec_pickles_and_deep_copies_as_models_and_workers_need():
    import copy
    import pickle

    spec = load_spec("resnet18")
    for twin in (pickle.loads(pickle.dumps(spec)), copy.deepcopy(spec)):
        assert twin == spec and twin.positions == spec.positions and twin.raw == spec.raw


def test_the_plan_is_made_once_for_load_build_and_analysis(monkeypatch):
    plan_module = importlib.import_module("nasblocks.spec.plan")  # (`plan` is also a function)
    calls = []
    real = plan_module.plan_for
    monkeypatch.setattr(
        plan_module, "plan_for", lambda s, shape: calls.append(shape) or real(s, shape)
    )
    spec = load_spec("resnet18")
    assert calls == [(3, 224, 224)]
    assert plan(spec) is spec.plan is plan(spec, (3, 224, 224))
    build(spec)
    from nasblocks.analysis import count

    count(spec)
    assert calls == [(3, 224, 224)]  # build and count reused it
    other = plan(spec, (3, 64, 64))  # another input size is planned for itself
    assert calls[-1] == (3, 64, 64) and other is not spec.plan


def test_sugar_keeps_positions_out_of_the_layers():
    spec = load_spec("resnet18")
    stage = spec.layers[4]
    assert stage.path == ("stages", "layers", 0)
    first = stage.children[0]
    assert first.field_paths["channels"] == ("stages", "widths", 0)
    assert "__paths__" not in str(spec.canonical())
