"""A network's anatomy as timm sees it, read off the shape plan: feature levels, head, classifier.

timm describes a model by its ``feature_info`` (one entry per feature level: channels,
reduction, module) and splits ``forward`` into ``forward_features`` (the backbone's last map)
and ``forward_head`` (pool, dropout, classifier). Every nasblocks network gets the same
description here, for any spec, without a module or a tensor (torch-free):

- The layers are flattened into *ops*, module paths in execution order. A group (ResNet's
  ``layer1``, VGG's ``features``) stays one op when its resolution does not change inside it,
  else it is opened into its children (and a repeated layer into its repetitions).
- The *reduction* of a map is measured, not guessed: the layers are planned a second time for
  an input :data:`PROBE` pixels larger; a map that grows by ``PROBE / r`` has reduction ``r``
  (exact for any stride that divides ``PROBE``, whatever the padding: Inception-v3's 8x8 map of a
  299x299 input has reduction 32, as timm says), and a map that does not grow (an adaptive or
  global pool) belongs to the head.
- The feature levels are the last op at each reduction, as long as reductions rise (a U-Net's
  decoder is no level; a map of the input's own shape, an input transform, is none either).
  ``forward_features`` ends at the last map; the classifier is the last linear layer after it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from nasblocks.errors import SpecError
from nasblocks.registry import Shape
from nasblocks.spec.plan import INPUT, Node, Plan, plan_layers
from nasblocks.spec.types import Layer, Spec

PROBE = 2**10 * 3**2 * 5 * 7
"""Extra input pixels of the second plan: a multiple of every stride up to 1024 (and 3, 5, 7)."""

# The steps of a `classifier` block (nasblocks.modules.core.ClassifierHead, whose forward is
# exactly this chain; a test checks it), so that pre-logits can stop before its `fc`.
_CLASSIFIER_STEPS = ("pool", "flatten", "dropout", "fc")


@dataclass(frozen=True)
class Op:
    """One module call of the flattened network."""

    path: str  # module path in the built network: "layer1", "features.3", "head.fc"
    kind: str  # block kind, or "group"
    inputs: tuple[int, ...]  # indices of earlier ops; INPUT is the network input
    shape: Any  # output shape at the spec's input
    reduction: Fraction | None  # input size / map size; None: no map that scales with the input
    layer: Layer
    step: str | None = None  # a step inside a `classifier` block


@dataclass(frozen=True)
class Layout:
    """The flattened network and where its feature levels, feature map and classifier are."""

    ops: tuple[Op, ...]
    input_shape: Shape
    levels: tuple[int, ...]  # op index of each feature level
    features: int | None  # op index of forward_features' output
    classifier: int | None  # op index of the final linear layer
    output: int  # op index of the main output

    def feature_dicts(self) -> list[dict[str, Any]]:
        """timm's feature_info entries, one per level."""
        return [
            {
                "num_chs": self.ops[i].shape[0],
                "reduction": int(self.ops[i].reduction or 0),
                "module": self.ops[i].path,
                "index": k,
            }
            for k, i in enumerate(self.levels)
        ]

    @property
    def num_features(self) -> int | None:
        """Channels of the last feature map (timm's ``num_features``)."""
        return None if self.features is None else int(self.ops[self.features].shape[0])

    @property
    def head_hidden_size(self) -> int | None:
        """Width of the classifier's input (timm's ``head_hidden_size``, pre-logits)."""
        if self.classifier is None:
            return self.num_features
        j = self.ops[self.classifier].inputs[0]
        return int((self.input_shape if j == INPUT else self.ops[j].shape)[0])

    def needed(self, outputs: Sequence[int], start: int | None) -> list[int]:
        """The ops that compute ``outputs`` from ``start`` (an op's map, or the input), in order;
        a SpecError if they need anything computed before ``start``."""
        seen: set[int] = set()
        todo = [i for i in outputs if i != start]
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            if start is not None and i < start:
                raise SpecError(
                    f"the head reads {self.ops[i].path!r}, computed before the feature map "
                    f"{self.ops[start].path!r}, so it cannot start from that map alone",
                    ("forward_head",),
                )
            seen.add(i)
            for j in self.ops[i].inputs:
                if j == INPUT and start is not None:
                    raise SpecError(
                        f"the head reads the network input, so it cannot start from the "
                        f"feature map {self.ops[start].path!r} alone",
                        ("forward_head",),
                    )
                if j != INPUT and j != start:
                    todo.append(j)
        return sorted(seen)

    def describe(self) -> str:
        """``0: relu 64@2, 1: layer1 256@4, ...`` for messages."""
        return ", ".join(
            f"{d['index']}: {d['module']} {d['num_chs']}@{d['reduction']}"
            for d in self.feature_dicts()
        )


class FeatureInfo:
    """timm's ``FeatureInfo``: one dict per feature level (``num_chs``, ``reduction``,
    ``module``, ``index``) and the levels a model returns (``out_indices``).

    ``info[i]`` and ``len(info)`` cover every level; ``channels()``, ``reduction()``,
    ``module_name()`` and ``get_dicts()`` the returned ones unless ``idx`` says otherwise.
    """

    def __init__(
        self, info: Sequence[Mapping[str, Any]], out_indices: Sequence[int] | None = None
    ) -> None:
        self.info = [dict(d) for d in info]
        self.out_indices = tuple(range(len(self.info)) if out_indices is None else out_indices)

    def from_other(self, out_indices: Sequence[int]) -> FeatureInfo:
        return FeatureInfo(copy.deepcopy(self.info), out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]  # type: ignore[index]

    def get_dicts(
        self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None
    ) -> Any:
        def pick(i: int) -> dict[str, Any]:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [pick(i) for i in idx]
        return pick(idx)  # type: ignore[arg-type]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureInfo):
            return NotImplemented
        return self.info == other.info and self.out_indices == other.out_indices

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info!r}, out_indices={self.out_indices!r})"


# -- the layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """A node of the module tree: a layer, a repetition, or a step of a classifier block."""

    path: str
    layer: Layer
    shape: Any
    reduction: Fraction | None
    inputs: tuple[int, ...]  # positions among its siblings; INPUT is the parent's input
    children: tuple[_Site, ...] = ()
    step: str | None = None

    def leaves(self) -> Iterator[_Site]:
        if not self.children:
            yield self
        for c in self.children:
            yield from c.leaves()


def _is_classifier(site: _Site) -> bool:
    """A linear layer, a classifier block's fc, or a 1x1 conv giving a 1x1 map (timm's
    ``use_conv`` classifiers: DPN, DLA)."""
    if site.layer.kind == "linear" or site.step == "fc":
        return True
    shape = site.shape
    return site.layer.kind == "conv2d" and _is_map(shape) and shape[1:] == (1, 1)


def _is_map(shape: Any) -> bool:
    return isinstance(shape, tuple) and len(shape) == 3 and all(isinstance(d, int) for d in shape)


class _Reducer:
    """Reduction of a map, from its size at the spec's input and at the probe input."""

    def __init__(self, in_shape: Shape, probed: bool) -> None:
        self.in_h = in_shape[1]
        self.probed = probed

    def __call__(self, shape: Any, probe_shape: Any) -> Fraction | None:
        if not _is_map(shape):
            return None
        if not self.probed:  # the probe plan failed: the size ratio, rounded
            return Fraction(max(1, round(self.in_h / shape[1])))
        if not _is_map(probe_shape):
            return None
        grow_h, grow_w = probe_shape[1] - shape[1], probe_shape[2] - shape[2]
        if grow_h <= 0 or grow_w <= 0:
            return None  # a fixed size, whatever the input: a global or adaptive pool
        return Fraction(PROBE, grow_h)


def _sites(p: Plan, q: Plan, prefix: str, red: _Reducer) -> tuple[_Site, ...]:
    position: dict[int, int] = {}
    out: list[_Site] = []
    for k, (n, m) in enumerate(zip(p.nodes, q.nodes, strict=True)):
        if n.layer.aux:  # aux heads: not part of the features or the main head
            continue
        inputs = tuple(INPUT if j == INPUT else position[j] for j in n.inputs)
        position[k] = len(out)
        out.append(_site(n, m, prefix + n.name, inputs, red))
    return tuple(out)


def _site(n: Node, m: Node, path: str, inputs: tuple[int, ...], red: _Reducer) -> _Site:
    layer = n.layer
    r = red(n.out_shape, m.out_shape)
    children: tuple[_Site, ...] = ()
    if n.group is not None:
        group, probe = n.group, m.group
        assert probe is not None
        if layer.repeat == 1:
            children = _sites(group, probe, path + ".", red)
        else:
            children = tuple(
                _Site(
                    f"{path}.{i}",
                    layer,
                    n.out_shape,
                    r,
                    (i - 1,) if i else (INPUT,),
                    _sites(group, probe, f"{path}.{i}.", red),
                )
                for i in range(layer.repeat)
            )
    elif layer.repeat > 1:
        children = tuple(
            _Site(f"{path}.{i}", layer, s, red(s, t), (i - 1,) if i else (INPUT,))
            for i, (s, t) in enumerate(zip(n.repeat_shapes, m.repeat_shapes, strict=True))
        )
    elif layer.kind == "classifier":
        c = n.in_shape[0]
        shapes = ((c, 1, 1) if len(n.in_shape) == 3 else (c,), (c,), (c,), n.out_shape)
        children = tuple(
            _Site(f"{path}.{s}", layer, shape, None, (i - 1,) if i else (INPUT,), step=s)
            for i, (s, shape) in enumerate(zip(_CLASSIFIER_STEPS, shapes, strict=True))
        )
    return _Site(path, layer, n.out_shape, r, inputs, children)


def _opened(sites: Sequence[_Site], forced: set[str]) -> set[str]:
    """Paths of the sites to open: resolution changes inside them, or the classifier is in."""
    out: set[str] = set()
    for s in sites:
        if s.children and (
            s.path in forced or any(leaf.reduction != s.reduction for leaf in s.leaves())
        ):
            out.add(s.path)
            out |= _opened(s.children, forced)
    return out


def _flatten(
    sites: Sequence[_Site], input_op: int, opened: set[str], ops: list[Op]
) -> dict[int, int]:
    """Append the ops of ``sites`` to ``ops``; returns site position -> op of its output."""
    op_of: dict[int, int] = {}
    for pos, s in enumerate(sites):
        inputs = tuple(input_op if j == INPUT else op_of[j] for j in s.inputs)
        if s.path in opened:
            inner = _flatten(s.children, inputs[0], opened, ops)
            op_of[pos] = inner[len(s.children) - 1]
        else:
            kind = "linear" if s.step == "fc" else (s.step or s.layer.kind)
            ops.append(Op(s.path, kind, inputs, s.shape, s.reduction, s.layer, s.step))
            op_of[pos] = len(ops) - 1
    return op_of


def _levels(ops: Sequence[Op], input_shape: Shape) -> tuple[int, ...]:
    levels: list[int] = []
    current = Fraction(0)
    for i, op in enumerate(ops):
        r = op.reduction
        if r is None or tuple(op.shape) == tuple(input_shape):
            continue
        if r < current:
            break  # the resolution rises again (a decoder): the pyramid is over
        if r.denominator != 1:
            continue
        if r > current:
            levels.append(i)
            current = r
        else:
            levels[-1] = i
    return tuple(levels)


def layout(spec: Spec) -> Layout:
    """The anatomy of ``spec`` at its own input size (see the module docstring)."""
    main = spec.plan
    c, h, w = spec.input_shape
    try:
        probe = plan_layers(spec.layers, (c, h + PROBE, w + PROBE), top=True)
        probed = True
    except SpecError:  # a block that takes one input size only: fall back on size ratios
        probe, probed = main, False
    red = _Reducer(spec.input_shape, probed)
    sites = _sites(main, probe, "", red)
    leaves = [leaf for s in sites for leaf in s.leaves()]
    maps = [k for k, leaf in enumerate(leaves) if leaf.reduction is not None]
    after = maps[-1] + 1 if maps else 0
    linear = [leaf for leaf in leaves[after:] if _is_classifier(leaf)]
    forced: set[str] = set()
    if linear:
        parts = linear[-1].path.split(".")
        forced = {".".join(parts[:k]) for k in range(1, len(parts))}
    ops: list[Op] = []
    op_of = _flatten(sites, INPUT, _opened(sites, forced), ops)
    output = op_of[len(sites) - 1]
    main_outputs = [name for _, name in spec.outputs or () if not _is_aux(spec, name)]
    if len(main_outputs) == 1:
        output = op_of[next(k for k, s in enumerate(sites) if s.path == main_outputs[0])]
    with_map = [i for i, op in enumerate(ops) if op.reduction is not None]
    classifier = None
    if linear:
        classifier = next(i for i, op in enumerate(ops) if op.path == linear[-1].path)
    return Layout(
        ops=tuple(ops),
        input_shape=spec.input_shape,
        levels=_levels(ops, spec.input_shape),
        features=with_map[-1] if with_map else None,
        classifier=classifier,
        output=output,
    )


def _is_aux(spec: Spec, name: str) -> bool:
    return any(layer.name == name and layer.aux for layer in spec.layers)


def select_levels(lay: Layout, out_indices: Any, name: str) -> tuple[int, ...]:
    """timm's ``out_indices`` (indices of levels, negative from the end; an int ``n``: the last
    ``n``) as sorted level indices; a one-line SpecError for anything else."""
    n = len(lay.levels)
    if not n:
        raise SpecError(
            f"{name} has no feature maps (no layer outputs a (C, H, W) map that scales with "
            "the input), so features_only has nothing to return",
            ("features_only",),
        )
    where = ("out_indices",)
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 1 <= out_indices <= n:
            raise SpecError(
                f"{out_indices} (the last N levels) must be 1..{n}: {name} has {n} feature "
                f"levels ({lay.describe()})",
                where,
            )
        return tuple(range(n - out_indices, n))
    if not isinstance(out_indices, (list, tuple)) or not out_indices:
        raise SpecError(
            f"expected a tuple of level indices such as (1, 2, 3) or an int N (the last N), "
            f"got {out_indices!r}",
            where,
        )
    chosen: list[int] = []
    for i in out_indices:
        if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n:
            raise SpecError(
                f"{i!r} is not a feature level of {name}, which has {n} ({lay.describe()})",
                where,
            )
        if i % n in chosen:
            raise SpecError(f"level {i % n} is listed twice", where)
        chosen.append(i % n)
    return tuple(sorted(chosen))


# -- drop_rate: the dropout before the classifier, in the spec ----------------------------------


def drop_rate_overrides(spec: Spec, rate: float) -> dict[str, Any]:
    """Overrides giving ``spec`` dropout ``rate`` right before its classifier (timm's
    ``drop_rate``): ``head.dropout`` for a stem/stages spec, the dropout layer feeding the
    classifier, a ``classifier`` block's ``dropout``, or a new dropout layer inserted before
    the classifier where that renames nothing."""
    where = ("drop_rate",)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise SpecError(f"expected a probability in [0, 1), got {rate!r}", where)
    lay = layout(spec)
    if lay.classifier is None:
        raise SpecError(
            f"{spec.name} has no linear classifier after its feature maps to put dropout before",
            where,
        )
    clf = lay.ops[lay.classifier]
    before = lay.ops[clf.inputs[0]] if clf.inputs[0] != INPUT else None
    if clf.layer.path[:1] == ("head",) and spec.doc.stages is not None:
        return {"head.dropout": float(rate)}
    if clf.step == "fc":
        return _set_field(spec, clf.layer, "dropout", float(rate))
    if before is not None and before.kind in ("dropout", "dropout2d"):
        return _set_field(spec, before.layer, "p", float(rate))
    if rate == 0:
        return {}
    return _insert_dropout(spec, clf.layer, float(rate))


def _raw_at(raw: Any, path: tuple[Any, ...]) -> Any:
    node = raw
    for key in path:
        if isinstance(node, dict) and isinstance(key, str) and key in node:
            node = node[key]
            continue
        if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
            continue
        return None
    return node


def _editable(layer: Layer) -> bool:
    """A layer written in the spec's own layer lists (not by sugar, not inside a template)."""
    path = layer.path
    return (
        len(path) >= 2
        and len(path) % 2 == 0
        and all(k == "layers" for k in path[0::2])
        and all(isinstance(i, int) for i in path[1::2])
    )


def _cannot(layer: Layer, what: str) -> SpecError:
    return SpecError(
        f"cannot set drop_rate: {what} (layer {layer.name!r}); set the dropout in the spec",
        ("drop_rate",),
    )


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(map(str, path))


def _set_field(spec: Spec, layer: Layer, field: str, value: float) -> dict[str, Any]:
    raw = spec.raw
    item = _raw_at(raw, layer.path) if _editable(layer) else None
    if item is None:
        raise _cannot(layer, "its dropout is generated by sugar or a template")
    kind = layer.kind
    item = {kind: None} if isinstance(item, str) else copy.deepcopy(item)
    body = item
    if "block" in item:
        body = {kind: None} if isinstance(item["block"], str) else item["block"]
        item["block"] = body
    if not isinstance(body, dict) or kind not in body:
        raise _cannot(layer, "its entry in the spec has an unexpected form")
    args = body[kind]
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        shorthand = type(layer.block).shorthand if layer.block is not None else None
        if shorthand is None:
            raise _cannot(layer, "its entry in the spec has an unexpected form")
        args = {shorthand: args}
    body[kind] = {**args, field: value}
    return {_dotted(layer.path): item}


def _insert_dropout(spec: Spec, clf: Layer, rate: float) -> dict[str, Any]:
    """A ``dropout`` layer before the classifier, where that renames and rewires nothing: the
    classifier and every layer after it in its list are named and none refers by index."""
    raw = spec.raw
    if not _editable(clf):
        raise _cannot(clf, "there is no dropout layer before the classifier to set")
    items = _raw_at(raw, clf.path[:-1])
    at = clf.path[-1]
    assert isinstance(items, list) and isinstance(at, int)
    tail = items[at:]
    named = all(isinstance(it, dict) and isinstance(it.get("name"), str) for it in tail)
    by_index = any(isinstance(it, dict) and _int_refs(it.get("from")) for it in tail[1:]) or (
        isinstance(tail[0], dict) and tail[0].get("from", -1) not in (-1, None)
    )
    if not named or by_index:
        raise _cannot(
            clf,
            "there is no dropout layer before the classifier, and inserting one would rename "
            "or rewire layers",
        )
    names = {it.get("name") for it in items if isinstance(it, dict)}
    name, k = "dropout", 1
    while name in names:
        name, k = f"dropout_{k}", k + 1
    new = [*items[:at], {"name": name, "dropout": rate}, *items[at:]]
    return {_dotted(clf.path[:-1]): new}


def _int_refs(ref: Any) -> bool:
    refs = ref if isinstance(ref, list) else [ref]
    return any(
        isinstance(r, int) or (isinstance(r, str) and r.lstrip("-").isdigit()) for r in refs
    )
