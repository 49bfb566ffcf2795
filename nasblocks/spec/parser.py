"""Turn a spec document into a frozen, validated :class:`~nasblocks.spec.types.Spec`.

Sugar (:mod:`.sugar`) expands into the general layer list first; :class:`Parser` then applies
``$vars``, templates, model defaults and the width/depth multipliers and validates every
block by its pydantic model. Errors point at the source (:mod:`.located`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from nasblocks.blocks._shapes import make_divisible
from nasblocks.errors import RegistryError, SpecError, YamlPath
from nasblocks.registry import BlockSpec, get_block, is_block, suggest
from nasblocks.spec.block_stages import block_stage_items
from nasblocks.spec.located import pydantic_error
from nasblocks.spec.models import LAYER_META, SpecDocument
from nasblocks.spec.names import MAX_LAYERS, check_layer_name, check_name, check_paths
from nasblocks.spec.sugar import Generated, expand_stages, scaled_depth, vgg_items
from nasblocks.spec.types import Layer, Spec


class Parser:
    """The general layer list -> :class:`Layer` tree: ``$vars`` and template parameters
    substituted, model defaults applied, widths and depths scaled by the multipliers, every
    block validated by its model; each error located at the source."""

    def __init__(self, doc: SpecDocument) -> None:
        self.doc = doc
        self.defaults = doc.defaults.model_dump(exclude_unset=True, exclude_none=True)
        self.variables: dict[str, Any] = {"num_classes": doc.num_classes, **doc.vars}
        self.templates = doc.templates
        self.using: list[str] = []  # templates being expanded, outermost first
        self.parsed = 0  # layer entries read, templates expanded (bounded by MAX_LAYERS)
        self.fixed_width = False  # inside a `fixed_width: true` layer: widths as written
        for tname in self.templates:
            where = ("templates", tname)
            check_name(tname, where, "template name")
            if tname in ("vgg", "block_stages") or is_block(tname):
                raise SpecError(f"template {tname!r} has the name of a block; rename it", where)
            if tname in LAYER_META or tname == "block":
                raise SpecError(
                    f"template {tname!r} has the name of a layer key (`{tname}:` in a layer "
                    "means that key, not the template); rename it",
                    where,
                )
            for pname in self.templates[tname].params:
                check_name(pname, (*where, "params", pname), "template parameter")

    # values --------------------------------------------------------------------------------
    def substitute(self, value: Any, path: YamlPath) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            name = value[1:]
            if name not in self.variables:
                raise SpecError(f"unknown variable {value!r}{suggest(name, self.variables)}", path)
            return self.variables[name]
        if isinstance(value, dict):
            return {k: self.substitute(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def scaled_repeat(self, n: int) -> int:
        return scaled_depth(n, self.doc.depth_multiple)

    def scale_width(self, spec: BlockSpec) -> BlockSpec:
        wm = self.doc.width_multiple
        fields = [n for n in type(spec).width_fields if getattr(spec, n, None)]
        if wm == 1.0 or not fields or self.fixed_width:
            return spec
        update = {
            n: make_divisible(
                getattr(spec, n) * wm,
                self.doc.round_channels,
                min_value=self.doc.round_channels,
            )
            for n in fields
        }
        return spec.model_copy(update=update)

    # layers --------------------------------------------------------------------------------
    def layers(self, items: Any, path: YamlPath) -> tuple[Layer, ...]:
        if not isinstance(items, list):
            raise SpecError("expected a list of layers", path)
        if not items:
            raise SpecError("a layer list needs at least one layer", path)
        if len(items) > MAX_LAYERS:
            raise SpecError(f"{len(items):,} layers; a network has at most {MAX_LAYERS:,}", path)
        out: list[Layer] = []
        seen: dict[str, int] = {}
        outer = self.fixed_width
        for i, item in enumerate(items):
            layer = self.layer(item, (*path, i), i)
            self.fixed_width = outer  # a layer's fixed_width covers it and its children only
            if layer.name in seen:
                raise SpecError(
                    f"duplicate layer name {layer.name!r} (also layer {seen[layer.name]})",
                    (*path, i, "name"),
                )
            seen[layer.name] = i
            out.append(layer)
        check_paths(seen, lambda name: (*path, seen[name], "name"))
        return tuple(out)

    def layer(self, item: Any, path: YamlPath, index: int) -> Layer:
        field_paths: dict[str, YamlPath] = {}
        if isinstance(item, Generated):  # written by sugar: located where the user wrote it
            field_paths, item = item.paths, item.item
            path = field_paths.get("", path)
        if isinstance(item, str):
            item = {item: None}
        if not isinstance(item, dict):
            raise SpecError("a layer is a block name or a mapping like {conv: 64}", path)
        self.parsed += 1
        if self.parsed > MAX_LAYERS:
            raise SpecError(
                f"more than {MAX_LAYERS:,} layers once templates are expanded; "
                "a network has at most that many",
                path,
            )
        item, at = _unwrap_block(item, path)  # `at`: where the block's mapping is
        meta = {k: v for k, v in item.items() if k in LAYER_META}
        kinds = [k for k in item if k not in LAYER_META]
        name = check_layer_name(meta.get("name", str(index)), (*path, "name"))
        if name == "input":
            raise SpecError("'input' is reserved for the network input", (*path, "name"))
        repeat = meta.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 1000:
            raise SpecError("repeat is a whole number from 1 to 1000", (*path, "repeat"))
        aux = meta.get("aux", False)
        if not isinstance(aux, bool):
            raise SpecError("aux is true or false", (*path, "aux"))
        fixed = meta.get("fixed_width", False)
        if not isinstance(fixed, bool):
            raise SpecError("fixed_width is true or false", (*path, "fixed_width"))
        self.fixed_width = self.fixed_width or fixed
        inputs = self.inputs(meta.get("from", -1), (*path, "from"))

        if "layers" in meta:
            if kinds:
                raise SpecError(f"a group has `layers` and no block; found {kinds[0]!r} too", path)
            children = self.layers(meta["layers"], (*path, "layers"))
            return Layer(name, None, children, inputs, self.scaled_repeat(repeat), aux, path)
        if not kinds:
            raise SpecError("a layer needs a block, e.g. {conv: 64}, or `layers`", path)
        if len(kinds) > 1:
            raise SpecError(
                f"a layer has one block; found {', '.join(map(repr, kinds))} "
                "(put parameters inside the block's mapping)",
                (*path, kinds[1]),
            )
        kind = kinds[0]
        if kind == "vgg":
            children = self.layers(vgg_items(item[kind], (*at, kind)), (*at, kind))
            return Layer(name, None, children, inputs, 1, aux, path)
        if kind == "block_stages":
            if repeat != 1:
                raise SpecError("block_stages takes `repeat` in each entry", (*path, "repeat"))
            where = (*at, kind)
            stages = block_stage_items(item[kind], where, self.doc.depth_multiple, self.substitute)
            return Layer(name, None, self.layers(stages, where), inputs, 1, aux, path)
        if kind in self.templates:
            children = self.template(str(kind), item[kind], (*at, kind))
            return Layer(
                name,
                None,
                children,
                inputs,
                self.scaled_repeat(repeat),
                aux,
                path,
                template=str(kind),
            )
        try:
            cls = get_block(str(kind))
        except RegistryError as e:
            message = str(e)
            hint = suggest(str(kind), self.templates)
            if hint:
                message = f"unknown block or template {kind!r}{hint}"
            raise SpecError(message, (*at, kind)) from None
        params = item[kind]
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            if cls.arity != 1 and isinstance(params, list):  # {concat: [-1, d1]}
                if "from" in meta:
                    raise SpecError("give the inputs once: in `from` or as the list", path)
                inputs = self.inputs(params, (*at, kind))
                params = {}
            elif cls.shorthand is None:
                raise SpecError(
                    f"{kind} has no short form; write its parameters as a mapping",
                    (*at, kind),
                )
            else:
                params = {cls.shorthand: params}
        if cls.arity != 1 and len(inputs) < 2 and cls.arity is None:
            raise SpecError(
                f"{kind} takes two or more inputs, e.g. {{{kind}: [-1, name]}}",
                (*path, "from"),
            )
        if cls.arity not in (None, 1) and len(inputs) != cls.arity:
            raise SpecError(f"{kind} takes {cls.arity} inputs, got {len(inputs)}", (*path, "from"))
        if cls.arity == 1 and len(inputs) != 1:
            raise SpecError(f"{kind} takes one input, got {len(inputs)}", (*path, "from"))
        spec = self.block(cls, params, (*at, kind), field_paths)
        return Layer(name, spec, None, inputs, self.scaled_repeat(repeat), aux, path, field_paths)

    def block(
        self,
        cls: type[BlockSpec],
        params: dict,
        path: YamlPath,
        field_paths: dict[str, YamlPath] | None = None,
    ) -> BlockSpec:
        params = self.substitute(params, path)
        for key, value in self.defaults.items():
            if key in cls.model_fields and key not in params:
                params[key] = value
        if "num_classes" in cls.model_fields and "num_classes" not in params:
            params["num_classes"] = self.doc.num_classes
        try:
            spec = cls.model_validate(params)
        except ValidationError as e:
            error = pydantic_error(e, (), cls)
            if error.path and str(error.path[0]) in (field_paths or {}):  # sugar wrote it
                assert field_paths is not None
                raise SpecError(error.message, field_paths[str(error.path[0])]) from None
            raise pydantic_error(e, path, cls) from None
        return self.scale_width(spec)

    def template(self, tname: str, args: Any, path: YamlPath) -> tuple[Layer, ...]:
        """The layers of one use of template ``tname`` with ``args`` (its ``$params``)."""
        tmpl = self.templates[tname]
        if tname in self.using:
            chain = " -> ".join([*self.using[self.using.index(tname) :], tname])
            raise SpecError(f"template {tname!r} uses itself ({chain})", path)
        params = tmpl.params
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            required = [k for k, v in params.items() if v is None]
            if len(required) != 1 and len(params) != 1:
                raise SpecError(
                    f"template {tname!r} takes {len(params)} parameters; give them as a "
                    f"mapping, e.g. {{{tname}: {{{', '.join(f'{k}: ...' for k in params)}}}}}"
                    if params
                    else f"template {tname!r} takes no parameters",
                    path,
                )
            args = {(required or list(params))[0]: args}
        for key in args:
            if key not in params:
                raise SpecError(
                    f"template {tname!r} has no parameter {key!r}{suggest(str(key), params)}"
                    + ("" if suggest(str(key), params) else f"; it takes: {', '.join(params)}"),
                    (*path, key),
                )
        values = {k: v for k, v in params.items() if v is not None}
        values.update(self.substitute(args, path))
        missing = [k for k in params if k not in values]
        if missing:
            raise SpecError(f"template {tname!r} needs {', '.join(map(repr, missing))}", path)
        outer = self.variables
        self.variables = {**outer, **values}
        self.using.append(tname)
        try:
            return self.layers(tmpl.layers, ("templates", tname, "layers"))
        finally:
            self.using.pop()
            self.variables = outer

    def inputs(self, value: Any, path: YamlPath) -> tuple[int | str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise SpecError("`from` needs at least one input", path)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise SpecError("an input is a layer index (-1 = previous) or a layer name", path)
        return tuple(items)


def _unwrap_block(item: dict, path: YamlPath) -> tuple[dict, YamlPath]:
    """``{name: a, block: {conv: 64}}`` -> ``{name: a, conv: 64}``, and where the block is."""
    if "block" not in item:
        return item, path
    body = item["block"]
    at = (*path, "block")
    if isinstance(body, str):
        body = {body: None}
    if not isinstance(body, dict) or len(body) != 1:
        raise SpecError(
            "block is a block or template name, or a one-entry mapping like {conv: 64}",
            at,
        )
    kind = next(iter(body))
    if kind in LAYER_META:
        raise SpecError(f"{kind!r} goes beside `block`, not inside it", (*at, kind))
    others = [k for k in item if k not in LAYER_META]
    if others:
        raise SpecError(
            f"a layer has one block; found `block` and {others[0]!r}",
            (*path, others[0]),
        )
    return {**{k: v for k, v in item.items() if k != "block"}, **body}, at


def _check_size(layers: tuple[Layer, ...]) -> int:
    """The number of blocks once repeats are expanded; a located error past MAX_LAYERS."""
    total = 0
    for layer in layers:
        inner = 1 if layer.children is None else _check_size(layer.children)
        total += layer.repeat * inner
        if total > MAX_LAYERS:
            raise SpecError(
                f"the network has more than {MAX_LAYERS:,} blocks once repeats are expanded "
                f"(this layer: {layer.repeat} x {inner:,})",
                (*layer.path, "repeat") if layer.repeat > 1 else layer.path,
            )
    return total


def normalize(doc: SpecDocument, raw: dict, file: str | None, positions: dict) -> Spec:
    """The validated :class:`Spec` of a document (sugar expanded first)."""
    parser = Parser(doc)
    if doc.stages is not None:
        if doc.layers is not None:
            raise SpecError(
                "give either `stages` (ResNet style) or `layers`, not both", ("layers",)
            )
        items = expand_stages(doc)
        layers = parser.layers(items, ("stages",))
    else:
        if doc.layers is None:
            raise SpecError("a spec needs `layers` (a layer list) or `stages` (ResNet style)")
        if doc.stem is not None or doc.head is not None:
            raise SpecError(
                "`stem` and `head` go with `stages`; a layer list spells them out",
                ("stem" if doc.stem is not None else "head",),
            )
        layers = parser.layers(doc.layers, ("layers",))
    _check_size(layers)
    if doc.outputs is not None:
        if isinstance(doc.outputs, dict):
            for key in doc.outputs:  # the fields of the named tuple a model returns
                check_name(key, ("outputs", key), "output name")
        wanted = set(doc.outputs.values() if isinstance(doc.outputs, dict) else doc.outputs)
        layers = tuple(x for x in layers if not x.aux or x.name in wanted)
    return Spec.of(doc, layers, raw, file, positions)
