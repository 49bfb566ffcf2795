"""Spec -> ``nn.Module``.

Shapes are planned first (no weight exists until every shape is known). Chains become
``nn.Sequential``; the network itself becomes a ``torch.fx.GraphModule`` whose ``forward`` is
generated Python — the same code one would write by hand, with no interpretation of the spec
at run time. Auxiliary outputs (GoogLeNet, Inception-v3) run only in training mode. The
network is a :class:`~nasblocks.network.Network`, with timm's model API; ``build`` also takes
timm's keywords (``features_only``, ``out_indices``, ``in_chans``, ``drop_rate``).
"""

from __future__ import annotations

import functools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import torch
from torch import fx, nn

from nasblocks.errors import BuildError, SpecError
from nasblocks.features import drop_rate_overrides
from nasblocks.init import apply_init
from nasblocks.modules.branches import pass_branches_unpacked
from nasblocks.network import FeatureNetwork, Network, feature_network
from nasblocks.spec import Spec, load_spec
from nasblocks.spec.plan import INPUT, Node, Plan, plan

_G = TypeVar("_G", bound=fx.GraphModule)


@overload
def build(
    source: str | Path | dict | Spec,
    *,
    weights: str | Path | None = None,
    allow_plugins: bool = False,
    features_only: Literal[False] = False,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    pretrained: bool = False,
    **overrides: Any,
) -> Network: ...


@overload
def build(
    source: str | Path | dict | Spec,
    *,
    weights: str | Path | None = None,
    allow_plugins: bool = False,
    features_only: bool,
    out_indices: Sequence[int] | int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    pretrained: bool = False,
    **overrides: Any,
) -> Network | FeatureNetwork: ...


def build(
    source: str | Path | dict | Spec,
    *,
    weights: str | Path | None = None,
    allow_plugins: bool = False,
    features_only: bool = False,
    out_indices: Sequence[int] | int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    pretrained: bool = False,
    **overrides: Any,
) -> Network | FeatureNetwork:
    """Build a network from a spec file, preset name, mapping or :class:`Spec`.

    ``overrides`` are dotted paths into the spec (``num_classes=10``,
    ``**{"stages.groups": 32}``); ``weights`` is a state-dict file, or ``"torchvision"`` for a
    preset's pretrained torchvision weights. ``allow_plugins``: let the spec's ``plugins:``
    import the code they name (see :func:`~nasblocks.spec.load_spec`).

    timm's keywords mean what they mean in ``timm.create_model``: ``features_only`` returns
    the feature maps (a list) of the levels ``out_indices`` (default all; ``feature_info``
    describes them), ``in_chans`` is ``in_channels``, ``drop_rate`` the dropout before the
    classifier (set in the spec), ``drop_path_rate`` the stochastic depth of the last block
    of ``stages:`` (timm's linear schedule), ``num_classes=0`` a network without classifier
    (``reset_classifier(0)`` after building; ``model.spec`` keeps the classifier).
    ``pretrained=True`` is refused: the weights come from ``weights=``.
    """
    if pretrained:
        raise SpecError(
            "nasblocks ships no weights of its own: weights='torchvision' loads torchvision's "
            "(for the presets torchvision also defines), weights=PATH a state-dict file",
            ("pretrained",),
        )
    if out_indices is not None and not features_only:
        raise SpecError(
            "out_indices selects feature maps: add features_only=True", ("out_indices",)
        )
    if in_chans is not None:
        if "in_channels" in overrides:
            raise SpecError("in_chans is timm's word for in_channels: give one", ("in_chans",))
        overrides["in_channels"] = in_chans
    classes = overrides.get("num_classes")
    no_classifier = classes == 0 and not isinstance(classes, bool)
    if no_classifier:
        del overrides["num_classes"]
    spec = load_spec(source, overrides, allow_plugins=allow_plugins)
    if drop_rate is not None:
        more = drop_rate_overrides(spec, drop_rate)
        if more:
            spec = load_spec(spec, more)
    if drop_path_rate is not None:
        if spec.doc.stages is None:
            raise SpecError(
                "drop_path_rate schedules the blocks of `stages:`; this spec has none: set "
                "`drop_path` on its residual blocks",
                ("drop_path_rate",),
            )
        spec = load_spec(spec, {"stages.drop_path_rate": drop_path_rate})
    model: Network | FeatureNetwork = build_spec(spec)
    finish: list[Callable[[Any], Any]] = []  # from the whole network to the one asked for
    if no_classifier:
        finish.append(lambda m: m.reset_classifier(0) or m)
    if features_only:
        finish.append(lambda m: feature_network(m, out_indices))
    error: SpecError | None = None
    if weights is not None:
        from nasblocks.weights import load_weights

        try:
            load_weights(model, spec, weights)
        except SpecError as e:  # they may fit the network as asked for (timm's habit)
            if not finish:
                raise
            error = e
    for step in finish:
        model = step(model)
    if error is not None:
        try:
            load_weights(model, spec, weights)  # type: ignore[arg-type]
        except SpecError:
            raise error from None
    return model


def build_spec(spec: Spec, input_shape: tuple[int, ...] | None = None) -> Network:
    """Build a validated spec (the pure function behind :func:`build`)."""
    net_plan = plan(spec, input_shape)
    model = _graph_module(net_plan, spec.outputs, _class_name(spec.name), Network)
    apply_init(model, spec.doc.init)
    model.spec = spec
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
    p: Plan,
    outputs: list[tuple[str, str]] | None,
    class_name: str,
    cls: type[_G] = fx.GraphModule,  # type: ignore[assignment]
) -> _G:
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
    if outputs is None:  # fields: the layer names, "_" for the dots of a dotted one
        outputs = [(n.replace(".", "_"), n) for n in (p.main_nodes[-1].name, *aux_names)]
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
    pass_branches_unpacked(graph, modules.__getitem__)
    return cls(modules, graph, class_name=class_name)
