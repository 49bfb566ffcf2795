"""Spec -> ``nn.Module``.

Shapes are planned first (no weight exists until every shape is known). Chains become
``nn.Sequential``; the network itself becomes a ``torch.fx.GraphModule`` whose ``forward`` is
generated Python — the same code one would write by hand, with no interpretation of the spec
at run time. Auxiliary outputs (GoogLeNet, Inception-v3) run only in training mode.
"""

from __future__ import annotations

import functools
from collections import OrderedDict, namedtuple
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from nasblocks.errors import BuildError, SpecError
from nasblocks.init import apply_init
from nasblocks.spec import Spec, load_spec
from nasblocks.spec.plan import INPUT, Node, Plan, plan


def build(
    source: str | Path | dict | Spec,
    *,
    weights: str | Path | None = None,
    allow_plugins: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build a network from a spec file, preset name, mapping or :class:`Spec`.

    ``overrides`` are dotted paths into the spec (``num_classes=10``,
    ``**{"stages.groups": 32}``); ``weights`` is a state-dict file, or ``"torchvision"`` for a
    preset's pretrained torchvision weights. ``allow_plugins``: let the spec's ``plugins:``
    import the code they name (see :func:`~nasblocks.spec.load_spec`).
    """
    spec = load_spec(source, overrides, allow_plugins=allow_plugins)
    model = build_spec(spec)
    if weights is not None:
        from nasblocks.weights import load_weights

        load_weights(model, spec, weights)
    return model


def build_spec(spec: Spec, input_shape: tuple[int, ...] | None = None) -> fx.GraphModule:
    """Build a validated spec (the pure function behind :func:`build`)."""
    net_plan = plan(spec, input_shape)
    model = _graph_module(net_plan, spec.outputs, _class_name(spec.name))
    apply_init(model, spec.doc.init)
    model.spec = spec  # type: ignore[assignment]
    return model


def _class_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name) or "Model"
    return cleaned if cleaned[0].isalpha() else "Model_" + cleaned


def _node_module(node: Node) -> nn.Module:
    layer = node.layer
    if node.group is not None:
        first = _plan_module(node.group)
        if layer.repeat == 1:
            return first
        rest = [_plan_module(node.group) for _ in range(layer.repeat - 1)]
        return nn.Sequential(first, *rest)
    assert layer.block is not None
    try:
        if layer.repeat == 1:
            return layer.block.build_for(node.in_shape)
        shapes = (node.in_shape, *node.repeat_shapes[:-1])
        return nn.Sequential(*(layer.block.build_for(s) for s in shapes))
    except SpecError:
        raise
    except Exception as e:  # a shape contract that disagrees with its module
        raise BuildError(
            f"building layer {layer.name!r} ({layer.kind}) failed: {type(e).__name__}: {e}"
        ) from e


def _plan_module(p: Plan) -> nn.Module:
    if p.is_chain:
        return nn.Sequential(OrderedDict((n.name, _node_module(n)) for n in p.nodes))
    return _graph_module(p, None, "Graph")


def run_if_training(module: nn.Module, *args: torch.Tensor) -> torch.Tensor | None:
    """Auxiliary heads cost nothing at inference: they run only in training mode."""
    return module(*args) if module.training else None


@functools.cache
def _outputs_type(names: tuple[str, ...]) -> type:
    return namedtuple("Outputs", names, rename=True)


def pack_outputs(
    flag: nn.Module, names: tuple[str, ...], aux: tuple[bool, ...], *values: Any
) -> Any:
    """All outputs (a named tuple) in training mode; the main output(s) in eval mode."""
    if flag.training:
        return _outputs_type(names)(*values)
    main = [v for v, is_aux in zip(values, aux, strict=True) if not is_aux]
    return main[0] if len(main) == 1 else tuple(main)


def _graph_module(
    p: Plan, outputs: list[tuple[str, str]] | None, class_name: str
) -> fx.GraphModule:
    graph = fx.Graph()
    x = graph.placeholder("x")
    modules: dict[str, nn.Module] = {}
    values: list[fx.Node] = []
    index = {n.name: i for i, n in enumerate(p.nodes)}
    for node in p.nodes:
        modules[node.name] = _node_module(node)
        args = tuple(x if j == INPUT else values[j] for j in node.inputs)
        if node.layer.aux:
            value = graph.call_function(run_if_training, (graph.get_attr(node.name), *args))
        else:
            value = graph.call_module(node.name, args)
        values.append(value)
    aux_names = [n.name for n in p.nodes if n.layer.aux]
    if outputs is None:
        outputs = [(n, n) for n in (p.main_nodes[-1].name, *aux_names)]
    fields = tuple(f for f, _ in outputs)
    out_values = [values[index[layer]] for _, layer in outputs]
    if aux_names:
        flags = tuple(p.nodes[index[layer]].layer.aux for _, layer in outputs)
        result = graph.call_function(
            pack_outputs, (graph.get_attr(aux_names[0]), fields, flags, *out_values)
        )
        graph.output(result)
    else:
        graph.output(out_values[0] if len(out_values) == 1 else tuple(out_values))
    graph.lint()
    return fx.GraphModule(modules, graph, class_name=class_name)
