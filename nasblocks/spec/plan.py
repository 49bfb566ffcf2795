"""Shape inference over normalized layers, before any weight exists.

Resolves ``from`` references, runs every block's shape contract, and returns a :class:`Plan`
the builder turns into modules. Every failure is a :class:`SpecError` at the layer's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasblocks.errors import ShapeError, SpecError
from nasblocks.registry import Shape
from nasblocks.spec.types import Layer, Spec

INPUT = -1  # node index meaning "the input of this layer list"
MAX_PARAMS = 2_000_000_000
"""Parameters a network may have (8 GB of float32 weights; ResNet-152 has 60 M), counted from
the blocks' analytic costs before anything is allocated, so a 100-byte spec cannot ask
``build`` for 240 GB."""

Cost = tuple[int, int]  # (parameters, multiply-accumulates)


@dataclass(frozen=True)
class Node:
    """A layer with resolved inputs and known shapes."""

    layer: Layer
    inputs: tuple[int, ...]
    in_shape: Any  # Shape, or a list of Shapes for multi-input blocks
    out_shape: Shape
    group: Plan | None = None  # the children of a group
    repeat_shapes: tuple[Shape, ...] = ()  # output of each repetition

    @property
    def name(self) -> str:
        return self.layer.name


@dataclass(frozen=True)
class Plan:
    """The shapes of one layer list (the network, or a group inside it)."""

    nodes: tuple[Node, ...]
    in_shape: Shape

    @property
    def out_shape(self) -> Shape:
        return self.main_nodes[-1].out_shape

    @property
    def main_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.layer.aux)

    @property
    def is_chain(self) -> bool:
        """Every node takes the one before it and no name is dotted: an ``nn.Sequential``
        will do."""
        return all(
            n.inputs == ((i - 1) if i else INPUT,) and not n.layer.aux and "." not in n.layer.name
            for i, n in enumerate(self.nodes)
        )


def _shape_str(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_str(s) for s in shape) + "]"
    return "x".join(map(str, shape))


def plan_layers(layers: tuple[Layer, ...], in_shape: Shape, top: bool = False) -> Plan:
    names = {layer.name: i for i, layer in enumerate(layers)}
    nodes: list[Node] = []
    for i, layer in enumerate(layers):
        inputs = tuple(_resolve(ref, i, names, layer, layers) for ref in layer.inputs)
        for j in inputs:
            if j != INPUT and layers[j].aux:
                raise SpecError(
                    f"layer {layers[j].name!r} is an aux output; other layers "
                    "cannot take it as input",
                    (*layer.path, "from"),
                )
        if layer.aux and not top:
            raise SpecError(
                "aux outputs are only allowed in the top-level layer list", (*layer.path, "aux")
            )
        shapes = [in_shape if j == INPUT else nodes[j].out_shape for j in inputs]
        if layer.block is None:
            if len(shapes) != 1:
                raise SpecError("a group takes one input", (*layer.path, "from"))
            group = plan_layers(layer.children or (), shapes[0])
            outs = [group.out_shape]
            for _ in range(layer.repeat - 1):
                if group.out_shape != group.in_shape:
                    raise SpecError(
                        f"cannot repeat a group that maps {_shape_str(group.in_shape)} to "
                        f"{_shape_str(group.out_shape)}",
                        (*layer.path, "repeat"),
                    )
                outs.append(group.out_shape)
            nodes.append(Node(layer, inputs, shapes[0], outs[-1], group, tuple(outs)))
            continue
        arg = shapes[0] if type(layer.block).arity == 1 else shapes
        outs = []
        shape = arg
        for _ in range(layer.repeat):
            try:
                shape = tuple(layer.block.output_shape(shape))
            except ShapeError as e:
                path = layer.field_paths.get(e.field or "", None)
                if path is None:
                    path = (*layer.path, layer.kind, e.field) if e.field else layer.path
                raise SpecError(
                    f"{e.message} (layer {layer.name!r}, {layer.kind}, input "
                    f"{_shape_str(shape if outs else arg)})",
                    path,
                ) from None
            outs.append(shape)
        nodes.append(Node(layer, inputs, arg, outs[-1], None, tuple(outs)))
    return Plan(tuple(nodes), in_shape)


def _resolve(
    ref: int | str, i: int, names: dict[str, int], layer: Layer, layers: tuple[Layer, ...]
) -> int:
    where = (*layer.path, "from")
    if isinstance(ref, str):
        if ref == "input":
            return INPUT
        if ref.lstrip("-").isdigit():
            ref = int(ref)
        else:
            if ref not in names:
                from nasblocks.registry import suggest

                raise SpecError(f"unknown layer {ref!r}{suggest(ref, names)}", where)
            j = names[ref]
            if j >= i:
                raise SpecError(f"layer {ref!r} comes later; inputs must come earlier", where)
            return j
    j = i + ref if ref < 0 else ref
    if ref < 0 and j == -1:
        return INPUT
    if j < -1 or j >= i:
        raise SpecError(
            f"input {ref} points outside the earlier layers (this is layer {i})", where
        )
    return j


def plan_costs(p: Plan, block_cost: Callable[[Any, Any], Cost]) -> list[Cost]:
    """Cost of every node of ``p``, in order: ``block_cost(block, in_shape)`` per block and
    repetition, a group's children times its repeats; an aux head's parameters count, its
    multiply-accumulates do not (it does not run in eval mode)."""
    out: list[Cost] = []
    for node in p.nodes:
        if node.group is not None:
            inner = plan_costs(node.group, block_cost)
            params = sum(c[0] for c in inner) * node.layer.repeat
            macs = sum(c[1] for c in inner) * node.layer.repeat
        else:
            inputs = [node.in_shape, *node.repeat_shapes[:-1]]
            costs = [block_cost(node.layer.block, s) for s in inputs]
            params, macs = sum(c[0] for c in costs), sum(c[1] for c in costs)
        out.append((params, 0 if node.layer.aux else macs))
    return out


def _declared(block: Any, in_shape: Any) -> Cost:
    return block.cost(in_shape) or (0, 0)  # blocks without a cost contract: not counted here


def check_params(p: Plan) -> None:
    """Refuse a network over :data:`MAX_PARAMS`, at the layer that crosses it (a lower bound:
    blocks that declare no cost count 0 here; torch-free)."""
    total = 0
    for node, (params, _) in zip(p.nodes, plan_costs(p, _declared), strict=True):
        total += params
        if total > MAX_PARAMS:
            raise SpecError(
                f"the network has more than {MAX_PARAMS:,} parameters ({total:,} up to this "
                f"layer, {params:,} in it); refusing before allocating any",
                node.layer.path,
            )


def plan(spec: Spec, input_shape: Shape | None = None) -> Plan:
    """Shapes of every layer of ``spec`` for ``input_shape`` (default: the spec's input, whose
    plan is made once and kept on the spec: :attr:`Spec.plan`)."""
    if input_shape is None or tuple(input_shape) == spec.input_shape:
        return spec.plan
    return plan_for(spec, tuple(input_shape))


def plan_for(spec: Spec, shape: Shape) -> Plan:
    """:func:`plan` itself, uncached."""
    try:
        result = plan_layers(spec.layers, shape, top=True)
        check_params(result)
        if spec.outputs is not None:
            if not spec.outputs:
                raise SpecError("outputs needs at least one layer", ("outputs",))
            names = {n.name for n in result.nodes}
            as_list = isinstance(spec.doc.outputs, list)
            for k, (field_name, name) in enumerate(spec.outputs):
                if name not in names:
                    from nasblocks.registry import suggest

                    raise SpecError(
                        f"unknown layer {name!r}{suggest(name, names)}",
                        ("outputs", k if as_list else field_name),
                    )
                if not field_name.isidentifier() or field_name.startswith("_"):
                    raise SpecError(
                        f"output name {field_name!r} is not a Python identifier",
                        ("outputs", k if as_list else field_name),
                    )
        return result
    except SpecError as e:
        raise e.located(spec.file, spec.positions) from None
