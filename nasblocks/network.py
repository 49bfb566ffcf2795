"""What ``nasblocks.build`` returns: ``torch.fx.GraphModule`` s with timm's model API.

:class:`Network` is the whole network, its ``forward`` the builder's generated code.
``forward_features`` and ``forward_head`` run the two halves timm splits a model into
(:mod:`nasblocks.features` finds them in the shape plan); their code is generated the same way,
once, on first use: module calls by attribute (``self.layer4(x)``), so a module swapped in
later is the one called, and nothing about the spec is interpreted at run time.
:class:`FeatureNetwork` (``features_only=True``) returns the feature maps as a list, as timm's
``FeatureListNet`` does. Both keep their class, name, ``spec`` and ``feature_info`` through
``pickle`` and ``copy.deepcopy`` (a plain GraphModule comes back as a bare ``GraphModule``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import fx, nn
from torch.fx.graph_module import reduce_graph_module

from nasblocks.errors import SpecError
from nasblocks.features import FeatureInfo, Layout, layout, select_levels
from nasblocks.init import apply_init
from nasblocks.modules.branches import pass_branches_unpacked
from nasblocks.spec import Spec, load_spec
from nasblocks.spec.plan import INPUT

_CACHE = "_nasblocks_anatomy"  # (spec, layout, generated functions); rebuilt after a copy


def _base(cls: type) -> type:
    """The class an instance was made as (fx puts a per-instance subclass on top of it)."""
    return next(t for t in cls.__mro__ if t.__qualname__.split(".")[-1] != "GraphModuleImpl")


def _unpickle(cls: Any, name: str, body: dict[str, Any], import_block: str) -> fx.GraphModule:
    plain = reduce_graph_module(body, import_block)
    out = cls(plain, plain.graph, class_name=name)
    for key in cls.kept:
        if key in body:
            setattr(out, key, body[key])
    return out


class _Kept(fx.GraphModule):
    """A GraphModule that keeps its class and the attributes named in ``kept`` when pickled
    or deep-copied."""

    kept: ClassVar[tuple[str, ...]] = ("spec",)
    spec: Spec

    def __reduce__(self) -> tuple[Any, ...]:
        _, (body, import_block) = super().__reduce__()
        body.pop(_CACHE, None)  # generated functions do not pickle; they are made again
        return (_unpickle, (_base(type(self)), type(self).__name__, body, import_block))

    def __deepcopy__(self, memo: dict[int, Any]) -> fx.GraphModule:
        twin = super().__deepcopy__(memo)
        type(twin).__name__ = type(self).__name__  # (fx's copy is named "GraphModule")
        for key in self.kept:
            if key in self.__dict__:
                setattr(twin, key, copy.deepcopy(self.__dict__[key], memo))
        return twin


def _emit(
    model: nn.Module, lay: Layout, outputs: Sequence[int], start: int | None, as_list: bool
) -> fx.Graph:
    """The graph computing ops ``outputs`` of ``model`` from ``start``'s map (``None``: the
    input)."""
    graph = fx.Graph()
    x = graph.placeholder("x")
    values = {INPUT if start is None else start: x}
    for i in lay.needed(outputs, start):
        op = lay.ops[i]
        values[i] = graph.call_module(op.path, tuple(values[j] for j in op.inputs))
    result = [values[i] for i in outputs]
    graph.output(result if as_list else result[0])
    return pass_branches_unpacked(graph, model.get_submodule)


def _method(model: nn.Module, graph: fx.Graph) -> Callable[..., Any]:
    """``graph`` as a function of ``(model, x)``: fx's generated forward, which reaches every
    module through ``self``, so it runs on ``model`` itself."""
    return type(fx.GraphModule(model, graph)).forward


class Network(_Kept):
    """A network built by nasblocks, with timm's model API on top of its generated forward.

    ``forward_features(x)``: the last feature map (ResNet-50: ``(B, 2048, 7, 7)``);
    ``forward_head(x, pre_logits=False)``: the rest (pool, flatten, dropout, classifier), or,
    with ``pre_logits``, everything but the classifier; ``num_features``, ``head_hidden_size``,
    ``num_classes``, ``drop_rate``, ``feature_info``, ``get_classifier()`` and
    ``reset_classifier(num_classes)`` as in timm.
    """

    __jit_unused_properties__ = [  # (TorchScript would compile properties)
        *fx.GraphModule.__jit_unused_properties__,
        "feature_info",
        "num_features",
        "head_hidden_size",
        "num_classes",
        "drop_rate",
    ]

    def _anatomy(self) -> tuple[Layout, dict[str, Callable[..., Any]]]:
        cached = self.__dict__.get(_CACHE)
        if cached is None or cached[0] is not self.spec:
            cached = (self.spec, layout(self.spec), {})
            self.__dict__[_CACHE] = cached
        return cached[1], cached[2]

    def _part(self, name: str) -> Callable[..., Any]:
        lay, parts = self._anatomy()
        fn = parts.get(name)
        if fn is None:
            if lay.features is None:
                raise SpecError(
                    f"{self.spec.name} has no feature map (no layer outputs a (C, H, W) map "
                    "that scales with the input)",
                    (f"forward_{'features' if name == 'features' else 'head'}",),
                )
            if name == "features":
                graph = _emit(self, lay, [lay.features], None, as_list=False)
            else:
                end = lay.output
                if name == "pre_logits" and lay.classifier is not None:
                    end = lay.ops[lay.classifier].inputs[0]
                graph = _emit(self, lay, [end], lay.features, as_list=False)
            fn = parts[name] = _method(self, graph)
        return fn

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The network up to its last feature map (timm's ``forward_features``)."""
        return self._part("features")(self, x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The rest of the network from ``forward_features``' map; ``pre_logits``: stop before
        the classifier (the pooled, dropped-out features)."""
        return self._part("pre_logits" if pre_logits else "head")(self, x)

    @property
    def feature_info(self) -> FeatureInfo:
        """Every feature level: ``num_chs``, ``reduction``, ``module`` (timm's)."""
        return FeatureInfo(self._anatomy()[0].feature_dicts())

    @property
    def num_features(self) -> int | None:
        """Channels of ``forward_features``' map."""
        return self._anatomy()[0].num_features

    @property
    def head_hidden_size(self) -> int | None:
        """Width of ``forward_head(x, pre_logits=True)``."""
        return self._anatomy()[0].head_hidden_size

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier (0 after ``reset_classifier(0)``)."""
        lay = self._anatomy()[0]
        if lay.classifier is None:
            return self.spec.num_classes
        fc = self.get_submodule(lay.ops[lay.classifier].path)
        return int(fc.out_features) if isinstance(fc, nn.Linear) else 0

    @property
    def drop_rate(self) -> float:
        """Dropout right before the classifier (timm's ``drop_rate``; set it with
        ``build(..., drop_rate=p)``)."""
        lay = self._anatomy()[0]
        if lay.classifier is None:
            return 0.0
        clf = lay.ops[lay.classifier]
        if clf.step == "fc":
            path = clf.path.rsplit(".", 1)[0] + ".dropout"
        elif clf.inputs[0] != INPUT and lay.ops[clf.inputs[0]].kind in ("dropout", "dropout2d"):
            path = lay.ops[clf.inputs[0]].path
        else:
            return 0.0
        return float(getattr(self.get_submodule(path), "p", 0.0))

    def get_classifier(self) -> nn.Module:
        """The final linear layer (``nn.Identity()`` where there is none)."""
        lay = self._anatomy()[0]
        if lay.classifier is None:
            return nn.Identity()
        return self.get_submodule(lay.ops[lay.classifier].path)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: none, ``forward`` returns the pre-logits),
        initialised by the spec's ``init`` scheme. ``spec`` follows where the spec's
        ``num_classes`` sets the classifier and nothing else."""
        if global_pool is not None:
            raise SpecError(
                "the pooling is part of the spec: rebuild with the head you want "
                "(head: {pool: max} for a stem/stages spec); reset_classifier changes the "
                "classifier only",
                ("global_pool",),
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise SpecError(f"expected a class count >= 0, got {num_classes!r}", ("num_classes",))
        lay = self._anatomy()[0]
        if lay.classifier is None:
            raise SpecError(
                f"{self.spec.name} has no linear classifier after its feature maps to reset",
                ("num_classes",),
            )
        clf = lay.ops[lay.classifier]
        old = self.get_submodule(clf.path)
        new: nn.Module = nn.Identity()
        if num_classes:
            like = next(iter(self.parameters()), None)
            bias = old.bias is not None if isinstance(old, nn.Linear) else True
            in_features = lay.head_hidden_size
            assert in_features is not None
            new = nn.Linear(
                in_features,
                num_classes,
                bias=bias,
                device=like.device if like is not None else None,
                dtype=like.dtype if like is not None else None,
            )
            apply_init(new, self.spec.doc.init)
        self.set_submodule(clf.path, new)
        if num_classes:
            spec = _respecified(self.spec, lay, num_classes)
            if spec is not None:
                self.spec = spec


def _shapes(p: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in p.nodes:
        out[prefix + n.name] = n.out_shape
        if n.group is not None:
            out |= _shapes(n.group, prefix + n.name + ".")
    return out


def _respecified(spec: Spec, lay: Layout, num_classes: int) -> Spec | None:
    """``spec`` with ``num_classes``, if that changes the classifier and what follows it only."""
    try:
        new = load_spec(spec, {"num_classes": num_classes})
    except SpecError:
        return None
    assert lay.classifier is not None
    relaid = layout(new)
    if [op.path for op in relaid.ops] != [op.path for op in lay.ops]:
        return None
    if relaid.ops[lay.classifier].shape != (num_classes,):
        return None
    tail = [op.path for op in lay.ops[lay.classifier :]]
    allowed = {".".join(p.split(".")[:k]) for p in tail for k in range(1, p.count(".") + 2)}
    before, after = _shapes(spec.plan), _shapes(new.plan)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return new if changed <= allowed else None


class FeatureNetwork(_Kept):
    """``build(..., features_only=True)``: the network up to its last requested feature level,
    returning the maps as a list (timm's ``FeatureListNet``); ``feature_info`` describes them.
    ``spec`` is the network it was cut from; the state-dict keys are that network's."""

    kept = ("spec", "feature_info")
    feature_info: FeatureInfo


def feature_network(model: Network, out_indices: Any = None) -> FeatureNetwork:
    """The feature maps of ``model`` at levels ``out_indices`` (default: all), sharing its
    modules."""
    lay = model._anatomy()[0]
    every = tuple(range(len(lay.levels)))
    chosen = select_levels(lay, every if out_indices is None else out_indices, model.spec.name)
    graph = _emit(model, lay, [lay.levels[i] for i in chosen], None, as_list=True)
    out = FeatureNetwork(model, graph, class_name=type(model).__name__ + "_features")
    out.spec = model.spec
    out.feature_info = FeatureInfo(lay.feature_dicts(), chosen)
    return out
