"""Search nodes: the values of a search space that are sampled instead of written.

A node is a YAML mapping with one of the keys ``choice``, ``int`` or ``float``::

    block: {choice: [basic, bottleneck]}
    layers: [{int: [1, 4]}, {int: [0, 3]}]
    lr: {float: [1.0e-3, 0.3], log: true}
    width: {int: [16, 64], step: 16, label: width}

Every node has a *name*, the Optuna parameter it becomes: its YAML path (``stages.block``)
or its ``label`` (several nodes with one label share one sampled value). A choice whose
alternatives contain nodes is a conditional sub-space: the nodes of alternative ``i`` are
named ``<choice name>.choice[i].<path inside it>`` — for an unlabelled choice exactly their
YAML path — so each alternative has its own parameters.

This module is torch- and optuna-free; a :class:`ParamSource` supplies the values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from nasblocks.errors import SpecError, YamlPath, format_path

NODE_KEYS = ("choice", "int", "float")
OPTION_KEYS = {
    "choice": ("label", "names"),
    "int": ("label", "step", "log"),
    "float": ("label", "step", "log"),
}
MAX_GRID = 1000  # values one int node may enumerate for the grid sampler

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Choice:
    """One of ``options``; Optuna sees ``labels`` (scalars), the spec gets the option."""

    name: str
    path: YamlPath
    options: tuple[Any, ...]  # compiled: may hold nested nodes
    labels: tuple[Scalar, ...]
    label: str | None = None

    def option(self, label: Scalar) -> Any:
        for lab, opt in zip(self.labels, self.options, strict=True):
            if lab == label and type(lab) is type(label):
                return opt
        raise SpecError(f"{label!r} is not one of {list(self.labels)}", self.path)

    def definition(self) -> tuple:
        return ("choice", _json(self.labels), _json(_plain(self.options)))

    def grid(self) -> list[Scalar]:
        return list(self.labels)


@dataclass(frozen=True)
class IntRange:
    """A whole number in ``[low, high]`` (both included) on a grid of ``step``."""

    name: str
    path: YamlPath
    low: int
    high: int
    step: int = 1
    log: bool = False
    label: str | None = None

    def definition(self) -> tuple:
        return ("int", self.low, self.high, self.step, self.log)

    def grid(self) -> list[int]:
        if (self.high - self.low) // self.step + 1 > MAX_GRID:
            raise SpecError(
                f"the grid sampler enumerates at most {MAX_GRID} values per node; "
                "give this int a larger step",
                self.path,
            )
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class FloatRange:
    """A real number in ``[low, high]``, uniform or log-uniform, optionally on a ``step`` grid."""

    name: str
    path: YamlPath
    low: float
    high: float
    step: float | None = None
    log: bool = False
    label: str | None = None

    def definition(self) -> tuple:
        return ("float", self.low, self.high, self.step, self.log)

    def grid(self) -> list[float]:
        if self.step is None:
            raise SpecError(
                "the grid sampler needs a finite set: give this float a `step` "
                "or make it a choice",
                self.path,
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


Node = Choice | IntRange | FloatRange


class ParamSource(Protocol):
    """Where sampled values come from: an Optuna trial, fixed parameters, a random draw."""

    def suggest(self, node: Node) -> Any:
        """The value of ``node``: a label for a choice, a number for a range."""
        ...


# -- parsing --------------------------------------------------------------------------------


def is_node(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in NODE_KEYS)


def contains_node(value: Any) -> bool:
    if is_node(value):
        return True
    if isinstance(value, dict):
        return any(contains_node(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_node(v) for v in value)
    return False


def compile_value(value: Any, path: YamlPath, name_of: NameFn) -> Any:
    """Replace every node mapping inside ``value`` by a node object (recursively)."""
    if is_node(value):
        return parse_node(value, path, name_of)
    if isinstance(value, dict):
        return {k: compile_value(v, (*path, k), name_of) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, (*path, i), name_of) for i, v in enumerate(value)]
    return value


class NameFn(Protocol):
    def __call__(self, path: YamlPath, label: str | None) -> str: ...


def parse_node(value: dict, path: YamlPath, name_of: NameFn) -> Node:
    kinds = [k for k in NODE_KEYS if k in value]
    if len(kinds) > 1:
        raise SpecError(f"a search node has one of choice/int/float; found {kinds}", path)
    kind = kinds[0]
    allowed = OPTION_KEYS[kind]
    for key in value:
        if key != kind and key not in allowed:
            raise SpecError(
                f"unknown key {key!r} in a {kind} node; it takes {', '.join(allowed)}",
                (*path, key),
            )
    label = value.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise SpecError("label is a non-empty name", (*path, "label"))
    name = name_of(path, label)
    if kind == "choice":
        return _choice(value, path, name, label, name_of)
    bounds = value[kind]
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)):
        raise SpecError(f"{kind} takes [low, high], e.g. {{{kind}: [1, 4]}}", (*path, kind))
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise SpecError("log is true or false", (*path, "log"))
    step = value.get("step")
    if step is not None and (not _is_number(step) or step <= 0):
        raise SpecError("step is a positive number", (*path, "step"))
    if log and step is not None:
        raise SpecError("log and step cannot be combined", (*path, "step"))
    low, high = bounds
    if kind == "int":
        if not all(isinstance(b, int) for b in bounds):
            raise SpecError("int bounds are whole numbers (use float for reals)", (*path, kind))
        if step is not None and not isinstance(step, int):
            raise SpecError("an int step is a whole number", (*path, "step"))
        step = step or 1
        if (high - low) % step:
            raise SpecError(
                f"high - low ({high - low}) is not a multiple of step {step}", (*path, kind)
            )
        if low > high:
            raise SpecError(f"low {low} is above high {high}", (*path, kind))
        if log and low < 1:
            raise SpecError("a log-scaled int needs low >= 1", (*path, kind))
        return IntRange(name, path, low, high, step, log, label)
    low, high = float(low), float(high)
    if not low < high:
        raise SpecError(f"float needs low < high, got [{low}, {high}]", (*path, kind))
    if log and low <= 0:
        raise SpecError("a log-scaled float needs low > 0", (*path, kind))
    if not all(math.isfinite(b) for b in (low, high)):
        raise SpecError("float bounds are finite numbers", (*path, kind))
    return FloatRange(name, path, low, high, float(step) if step else None, log, label)


def _choice(value: dict, path: YamlPath, name: str, label: str | None, name_of: NameFn) -> Choice:
    options = value["choice"]
    if not isinstance(options, list) or not options:
        raise SpecError("choice takes a non-empty list of options", (*path, "choice"))
    names = value.get("names")
    if names is not None and not (
        isinstance(names, list)
        and len(names) == len(options)
        and all(isinstance(n, str) and n for n in names)
    ):
        raise SpecError(f"names is a list of {len(options)} option names", (*path, "names"))
    compiled = tuple(
        compile_value(
            opt,
            (*path, "choice", i),
            _nested(name, i, path, name_of, names[i] if names is not None else None),
        )
        for i, opt in enumerate(options)
    )
    labels: list[Scalar] = (
        list(names) if names is not None else [_label(opt, i) for i, opt in enumerate(options)]
    )
    seen: dict[Any, int] = {}
    for i, lab in enumerate(labels):
        key = (type(lab).__name__, lab)
        if key in seen:
            raise SpecError(
                f"option {i} repeats option {seen[key]} ({lab!r})", (*path, "choice", i)
            )
        seen[key] = i
    return Choice(name, path, compiled, tuple(labels), label)


def _nested(
    parent: str, index: int, parent_path: YamlPath, name_of: NameFn, option: str | None = None
) -> NameFn:
    """Names of nodes inside alternative ``index`` of a choice named ``parent``: by the
    option's name when the choice has ``names`` (``stages.bottleneck.groups``), else by its
    index (``stages.choice[1].groups``)."""
    base = (*parent_path, "choice", index)
    prefix = (parent, option) if option is not None else (parent, "choice", index)

    def name(path: YamlPath, label: str | None) -> str:
        if label is not None:
            return name_of(path, label)
        return format_path((*prefix, *path[len(base) :]))

    return name


def _label(option: Any, index: int) -> Scalar:
    """What Optuna records for an option: the value for scalars, short JSON for small data."""
    if option is None or isinstance(option, (str, int, float, bool)):
        return option
    if not contains_node(option):
        text = _json(option)
        if len(text) <= 40:
            return text
    if isinstance(option, dict) and len(option) == 1:
        return f"#{index}:{next(iter(option))}"
    return f"#{index}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """Compiled value -> JSON-able (nodes become their definitions), for comparisons."""
    if isinstance(value, (Choice, IntRange, FloatRange)):
        return list(value.definition())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_structural(node: Node) -> bool:
    """A choice whose options are not plain numbers chooses structure (blocks, layer lists,
    mappings); numbers (widths, kernels, depths, rates) are values. A supernet gives each
    structural option its own weights and slices values from one tensor."""
    if not isinstance(node, Choice):
        return False
    return not all(_is_number(o) for o in node.options)


def iter_nodes(value: Any):
    """Every node in a compiled value, depth first in document order (nested ones too)."""
    if isinstance(value, (Choice, IntRange, FloatRange)):
        yield value
        if isinstance(value, Choice):
            for opt in value.options:
                yield from iter_nodes(opt)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_nodes(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_nodes(v)


def resolve(value: Any, source: ParamSource, params: dict[str, Any]) -> Any:
    """A compiled value with every node replaced by its sampled value.

    Only nodes on the chosen path are asked for, in document order, so the sequence of
    questions (and hence a seeded sampler's answers) is deterministic. ``params`` collects
    name -> value; a label asked twice is answered from it.
    """
    if isinstance(value, (Choice, IntRange, FloatRange)):
        if value.name in params:
            got = params[value.name]
        else:
            got = source.suggest(value)
            params[value.name] = got
        if isinstance(value, Choice):
            return resolve(value.option(got), source, params)
        return got
    if isinstance(value, dict):
        return {k: resolve(v, source, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, source, params) for v in value]
    return value
