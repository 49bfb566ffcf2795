"""Which shared tensor a subnet's parameter lives in: the supernet's weight-sharing rule.

A nasblocks space is data, so the rule needs no annotation of model code (NNI needed its
mutables written into the Python model). Every parameter of a built subnet is named by its
module path (``stage1.0.e30.op.1.weight``) and lies in one leaf layer of the spec's plan.

- **Structural choices** (a choice between blocks, layer lists or mappings: NAS-Bench-201's
  edges, ``basic`` / ``bottleneck``, an attention kind) give each option its own weights, a
  mixed op: a parameter's *slot* is its name plus the option chosen at every structural node
  that governs its layer (the node lies inside the layer's definition, or the layer inside the
  node's option).
- **Value nodes** (widths, expansion ratios, kernel sizes, depths, ``repeat``) share: one
  slot holds the largest shape seen, and a subnet uses its first ``k`` channels (slimmable
  networks, Yu et al. 2019; OFA's elastic width), the centre of its kernels (OFA's elastic
  kernel) and, since blocks are named by position, the first ``k`` blocks of a stack (OFA's
  elastic depth).

Labels shared by several nodes and conditional sub-spaces need nothing more: they decide the
sample, and the sample decides the names and options.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nasblocks.errors import YamlPath
from nasblocks.space import SearchSpace
from nasblocks.space.nodes import is_structural
from nasblocks.spec.plan import Plan
from nasblocks.spec.types import Layer

SlotKey = tuple[str, str, str, tuple[tuple[str, Any], ...]]
"""(tensor name, class of the module holding it, block kind of its layer,
((structural node, option chosen), ...))"""


def _strip_options(path: YamlPath) -> YamlPath:
    """A node inside a choice's option has ``choice, i`` in its path; the resolved spec has
    the option in the choice's place."""
    out: list[Any] = []
    skip = 0
    for i, item in enumerate(path):
        if skip:
            skip -= 1
            continue
        if item == "choice" and i + 1 < len(path) and isinstance(path[i + 1], int):
            skip = 1
            continue
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class StructuralNode:
    name: str
    path: YamlPath


def structural_nodes(space: SearchSpace) -> tuple[StructuralNode, ...]:
    """The space's structural choices, with their paths as they read in a resolved spec."""
    return tuple(
        StructuralNode(n.name, _strip_options(n.path)) for n in space.nodes if is_structural(n)
    )


def _related(a: YamlPath, b: YamlPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def leaf_layers(p: Plan, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """``(module path, layer)`` of every block of a plan, as the builder names them (a
    repeated block or group is a ``Sequential``: ``name.0``, ``name.1`` ...)."""
    for node in p.nodes:
        name = prefix + node.name
        repeat = node.layer.repeat
        for each in [name] if repeat == 1 else [f"{name}.{i}" for i in range(repeat)]:
            if node.group is not None:
                yield from leaf_layers(node.group, each + ".")
            else:
                yield each, node.layer


def _sources(layer: Layer) -> tuple[YamlPath, ...]:
    """Where a layer's definition and each of its fields were written (sugar such as
    ``stages:`` fills fields from paths beside the layer's own)."""
    return (layer.path, *layer.field_paths.values())


def governed_layers(
    p: Plan, nodes: tuple[StructuralNode, ...], params: Mapping[str, Any]
) -> dict[str, tuple[str, tuple[tuple[str, Any], ...]]]:
    """Module path of every leaf layer of the subnet planned by ``p`` and drawn with
    ``params`` -> (its block kind, ((structural node, option chosen), ...) for the nodes
    that govern it)."""
    governed: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {}
    for module, layer in leaf_layers(p):
        sources = _sources(layer)
        chosen = tuple(
            (n.name, params[n.name])
            for n in nodes
            if n.name in params and any(_related(n.path, s) for s in sources)
        )
        governed[module] = (layer.kind, chosen)
    return governed


def slot_keys(
    owners_of: Mapping[str, str],
    p: Plan,
    nodes: tuple[StructuralNode, ...],
    params: Mapping[str, Any],
) -> dict[str, SlotKey]:
    """The slot of each tensor of the subnet planned by ``p`` and drawn with ``params``
    (``owners_of``: tensor name -> class name of the module holding it). Besides the
    structural nodes that govern a layer, its block kind is part of the key: two kinds
    never share (``basic`` / ``bottleneck`` drawn through ``stages.block``, whose path the
    expanded layers do not carry)."""
    governed = governed_layers(p, nodes, params)
    owners = sorted(governed, key=len, reverse=True)
    out: dict[str, SlotKey] = {}
    for name, cls in owners_of.items():
        owner = next((m for m in owners if name.startswith(m + ".")), None)
        kind, chosen = governed[owner] if owner is not None else ("", ())
        out[name] = (name, cls, kind, chosen)
    return out
