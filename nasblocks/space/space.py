"""A search space file -> :class:`SearchSpace`; sampling -> a concrete spec mapping.

A space is a spec file in which any value may be a search node, plus an optional
``search:`` section (:class:`SearchSettings`). Node names (Optuna parameters) are YAML paths:
``stages.block``, ``stages.layers[2]``, ``train.lr`` for nodes in ``search.train``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nasblocks.errors import SpecError, YamlPath, format_path
from nasblocks.space.nodes import (
    Choice,
    FloatRange,
    IntRange,
    Node,
    ParamSource,
    compile_value,
    contains_node,
    is_node,
    is_structural,
    iter_nodes,
    resolve,
)
from nasblocks.space.settings import SearchSettings
from nasblocks.spec.yamlio import Positions, load_yaml

SEARCH_KEY = "search"


@dataclass(frozen=True)
class Sample:
    """One draw from a space: the concrete spec, the training settings, the values drawn."""

    spec: dict[str, Any]
    train: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, checked search space (nodes compiled, settings validated)."""

    name: str
    template: dict[str, Any]  # the spec part, nodes compiled
    train: dict[str, Any]  # search.train, nodes compiled
    settings: SearchSettings
    nodes: tuple[Node, ...]  # every distinct node name once, in document order
    raw: dict[str, Any] = field(repr=False)
    file: str | None = None
    positions: Positions = field(default_factory=dict, repr=False)

    def sample(self, source: ParamSource) -> Sample:
        """Ask ``source`` for the nodes on the chosen path: spec first, then training."""
        params: dict[str, Any] = {}
        spec = resolve(self.template, source, params)
        train = resolve(self.train, source, params)
        return Sample(spec, train, params)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def grid(self) -> dict[str, list[Any]]:
        """Every node's finite set of values (for Optuna's GridSampler)."""
        try:
            return {n.name: n.grid() for n in self.nodes}
        except SpecError as e:
            raise self.locate(e) from None

    def locate(self, error: SpecError) -> SpecError:
        return error.located(self.file, self.positions)

    def error(self, message: str, path: YamlPath) -> SpecError:
        return self.locate(SpecError(message, path))


def load_space(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Read a space file (or mapping), apply dotted ``overrides``, compile nodes, check settings.

    ``overrides`` use spec paths (``stages.block=basic`` fixes a choice) and ``search.`` paths
    (``search.budget.trials=5``). Raises a located :class:`SpecError`.
    """
    positions: Positions
    if isinstance(source, Mapping):
        file, positions, raw = None, {}, dict(source)
        name = str(raw.get("name") or "space")
    else:
        file = str(source)
        raw, positions = load_yaml(source)
        name = Path(source).stem
    try:
        if not isinstance(raw, dict):
            raise SpecError("a search space is a mapping (a spec with search nodes)")
        if overrides:
            from nasblocks.spec.overrides import apply_overrides

            raw = apply_overrides(raw, overrides)
        return _compile(raw, name, file, positions)
    except SpecError as e:
        raise e.located(file, positions) from None


def _name_of(path: YamlPath, label: str | None) -> str:
    if label is not None:
        return label
    if path[:2] == (SEARCH_KEY, "train"):
        path = path[1:]
    return format_path(path)


def _compile(raw: dict, name: str, file: str | None, positions: Positions) -> SearchSpace:
    section = raw.get(SEARCH_KEY) or {}
    if not isinstance(section, dict):
        raise SpecError("`search` is a mapping (data, train, budget, ...)", (SEARCH_KEY,))
    for key, value in section.items():
        if key != "train" and contains_node(value):
            raise SpecError(
                "search nodes are allowed in the spec and in search.train only",
                _node_path(value, (SEARCH_KEY, key)),
            )
    try:
        settings = SearchSettings.model_validate(section)
    except ValidationError as e:
        from nasblocks.spec.located import pydantic_error

        raise pydantic_error(e, (SEARCH_KEY,), _settings_model(e)) from None
    _check_train_keys(settings.train)
    if settings.supernet is not None:
        _check_train_keys(settings.supernet.train, (SEARCH_KEY, "supernet", "train"))
    if settings.evaluate is not None and settings.supernet is not None:
        raise SpecError(
            "a search is scored by a table (search.evaluate) or by a supernet, not both",
            (SEARCH_KEY, "supernet"),
        )
    spec_part = {k: v for k, v in raw.items() if k != SEARCH_KEY}
    if not spec_part:
        raise SpecError("the space has no network: add `stages:` or `layers:`")
    template = compile_value(spec_part, (), _name_of)
    train = compile_value(dict(settings.train), (SEARCH_KEY, "train"), _name_of)
    nodes = _distinct_nodes([template, train])
    if settings.supernet is not None and settings.supernet.strategy == "gdas":
        for node in _distinct_nodes([template]):
            if not is_structural(node):
                raise SpecError(
                    "search.supernet.strategy gdas searches choices between blocks only; "
                    "this node is a number (a width, depth or kernel size): use spos or "
                    "sandwich",
                    node.path,
                )
    if settings.sampler.name == "grid":
        for node in nodes:  # fail now, not at the first trial
            node.grid()
    return SearchSpace(name, template, train, settings, nodes, raw, file, positions)


def _node_path(value: Any, path: YamlPath) -> YamlPath:
    """Where the first search node inside ``value`` is."""
    if isinstance(value, dict) and not is_node(value):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return path
    for key, item in items:
        if contains_node(item):
            return _node_path(item, (*path, key))
    return path


def _distinct_nodes(values: list[Any]) -> tuple[Node, ...]:
    """Nodes by name; two nodes sharing a name (a label) must be the same node."""
    seen: dict[str, Node] = {}
    for value in values:
        for node in iter_nodes(value):
            other = seen.get(node.name)
            if other is None:
                seen[node.name] = node
            elif other.definition() != node.definition():
                raise SpecError(
                    f"{node.name!r} is defined differently at {format_path(other.path)}; "
                    "nodes sharing a label must be identical",
                    node.path,
                )
    return tuple(seen.values())


def _settings_model(err: ValidationError) -> type[BaseModel]:
    from nasblocks.space import settings as s

    loc = err.errors()[0]["loc"]
    models: dict[str, type[BaseModel]] = {
        "data": s.DataSettings,
        "budget": s.Budget,
        "evaluate": s.Evaluation,
        "warmup": s.Warmup,
        "supernet": s.SupernetSettings,
        "constraints": s.Constraints,
        "latency": s.LatencySettings,
        "sampler": s.SamplerSettings,
        "pruner": s.PrunerSettings,
    }
    if len(loc) >= 2 and isinstance(loc[0], str):
        return models.get(loc[0], s.SearchSettings)
    return s.SearchSettings


def _check_train_keys(train: dict[str, Any], where: YamlPath = (SEARCH_KEY, "train")) -> None:
    from nasblocks.registry import suggest
    from nasblocks.train.config import TrainConfig

    fields = TrainConfig.model_fields
    for key in train:
        if key not in fields:
            raise SpecError(
                f"unknown training setting {key!r}{suggest(str(key), fields)}",
                (*where, key),
            )


# -- sources that need no Optuna -------------------------------------------------------------


class FixedSource:
    """Values given by name (a stored trial's params); a missing name is an error."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def suggest(self, node: Node) -> Any:
        if node.name not in self.params:
            raise SpecError(f"no value given for {node.name!r}", node.path)
        value = self.params[node.name]
        if isinstance(node, Choice):
            node.option(value)  # raises when not an option
        elif not node.low <= value <= node.high:
            raise SpecError(f"{value!r} is outside [{node.low}, {node.high}]", node.path)
        return value


class FirstSource:
    """The first option / the low end of every node: a quick representative sample."""

    def suggest(self, node: Node) -> Any:
        return node.labels[0] if isinstance(node, Choice) else node.low


class RandomSource:
    """Uniform draws from a seeded ``random.Random`` (log-uniform for ``log`` nodes)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def suggest(self, node: Node) -> Any:
        if isinstance(node, Choice):
            return self.rng.choice(node.labels)
        if isinstance(node, IntRange):
            return self.rng.randrange(node.low, node.high + 1, node.step)
        assert isinstance(node, FloatRange)
        if node.step is not None:
            return self.rng.choice(node.grid())
        if node.log:
            import math

            return math.exp(self.rng.uniform(math.log(node.low), math.log(node.high)))
        return self.rng.uniform(node.low, node.high)
