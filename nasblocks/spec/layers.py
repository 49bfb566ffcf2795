"""Turn a spec document into a frozen, validated :class:`Spec` of normalized layers.

Sugar (``stem``/``stages``/``head``, ``vgg`` cfg lists) expands here into the general layer
list, model defaults and ``$vars`` are applied, multipliers scale channels and depths, and
every block's parameters are validated by its pydantic model. Errors point at the source.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from nasblocks.blocks._shapes import make_divisible
from nasblocks.errors import RegistryError, SpecError, YamlPath
from nasblocks.registry import BlockSpec, get_block, is_block, suggest
from nasblocks.spec.models import LAYER_META, SpecDocument, Vgg

MAX_LAYERS = 10_000
"""Blocks in a network once every ``repeat`` is expanded. The largest standard networks have a
few hundred (ResNet-152: 155 convolutions); a spec over this is refused before it is planned,
so a 1 KB file cannot keep ``summary`` or ``build`` busy for minutes."""
# Layer names become module attributes and names in the generated ``forward``: they must be
# plain identifiers (or nn.Sequential-style indices) that shadow nothing a module has. The
# public attributes of ``torch.fx.GraphModule`` / ``nn.Sequential`` / ``nn.Module`` are written
# out here so that the spec layer stays torch-free; tests/spec/test_hostile.py checks this
# list against torch's. ``spec`` is the attribute ``build`` sets on the model.
RESERVED_NAMES = frozenset(
    [
        "T_destination",
        "add_module",
        "add_submodule",
        "append",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "code",
        "compile",
        "cpu",
        "cuda",
        "delete_all_unused_submodules",
        "delete_submodule",
        "double",
        "dump_patches",
        "eval",
        "extend",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "graph",
        "half",
        "insert",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "pop",
        "print_readable",
        "recompile",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "to_folder",
        "train",
        "type",
        "xpu",
        "zero_grad",
        "training",
        "meta",
        "shape_env",
        "spec",
        "self",
    ]
)
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}|[0-9]{1,9}")
NAME_RULE = (
    "a name is a letter followed by letters, digits or _ (at most 64), or a layer index; "
    "not a Python keyword nor a module attribute"
)


def check_name(name: Any, path: YamlPath, what: str = "layer name") -> str:
    """``name`` as a safe identifier, or a located SpecError saying the rule."""
    if isinstance(name, int) and not isinstance(name, bool) and name >= 0:
        name = str(name)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        raise SpecError(f"{what} {shown} is not allowed: {NAME_RULE}", path)
    if keyword.iskeyword(name):
        raise SpecError(f"{what} {name!r} is a Python keyword; choose another name", path)
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{what} {name!r} is an attribute every nn.Module has; choose another name", path
        )
    return name


PATHS_KEY = "__paths__"  # private: where a sugar-generated field came from in the source


@dataclass(frozen=True)
class Layer:
    """One normalized layer: a block (possibly repeated) or a group of layers."""

    name: str
    block: BlockSpec | None
    children: tuple[Layer, ...] | None
    inputs: tuple[int | str, ...]
    repeat: int = 1
    aux: bool = False
    path: YamlPath = ()
    field_paths: dict[str, YamlPath] = field(default_factory=dict, compare=False, repr=False)
    template: str | None = field(default=None, compare=False)  # the template it is a use of

    @property
    def kind(self) -> str:
        if self.block is not None:
            return self.block.kind
        return self.template or "group"

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "from": list(self.inputs)}
        if self.block is not None:
            out[self.block.kind] = self.block.model_dump(mode="json")
        else:
            out["layers"] = [c.canonical() for c in self.children or ()]
        if self.repeat != 1:
            out["repeat"] = self.repeat
        if self.aux:
            out["aux"] = True
        return out


@dataclass(frozen=True)
class Spec:
    """A validated network: the document as written and its normalized layers."""

    doc: SpecDocument
    layers: tuple[Layer, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)
    file: str | None = field(default=None, compare=False)
    positions: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.doc.input
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        return self.doc.num_classes

    @property
    def outputs(self) -> list[tuple[str, str]] | None:
        """``(field name, layer name)`` pairs of an explicit ``outputs``, else None."""
        out = self.doc.outputs
        if out is None:
            return None
        return list(out.items()) if isinstance(out, dict) else [(n, n) for n in out]

    def canonical(self) -> dict[str, Any]:
        """Everything that determines the built module, in a stable JSON-able form."""
        return {
            "input": list(self.doc.input),
            "init": self.doc.init,
            "outputs": self.doc.outputs,
            "layers": [layer.canonical() for layer in self.layers],
        }

    def hash(self) -> str:
        """Identity of the architecture (same hash, same module), for search dedup."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- pydantic errors -> one located line ---------------------------------------------------


def pydantic_error(
    err: ValidationError, prefix: YamlPath, model: type[BaseModel] | None = None
) -> SpecError:
    first = err.errors()[0]
    loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and "[" in x))
    msg = first["msg"]
    if first["type"] == "extra_forbidden" and loc:
        key = loc[-1]
        options = list(model.model_fields) if model is not None else []
        msg = f"unknown field {key!r}{suggest(str(key), options)}"
        if options and not suggest(str(key), options):
            msg += f"; valid fields: {', '.join(options)}"
    elif first["type"] == "missing":
        msg = f"missing required field {loc[-1]!r}" if loc else "missing value"
        loc = loc[:-1] if len(loc) > 1 else loc
    elif "input" in first and first["type"] not in ("missing",):
        shown = repr(first["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{msg} (got {shown})"
    extra = len(err.errors()) - 1
    if extra:
        msg += f" (and {extra} more error{'s' if extra > 1 else ''})"
    return SpecError(msg, (*prefix, *loc))


# -- the parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, doc: SpecDocument) -> None:
        self.doc = doc
        self.defaults = doc.defaults.model_dump(exclude_unset=True, exclude_none=True)
        self.variables: dict[str, Any] = {"num_classes": doc.num_classes, **doc.vars}
        self.templates = doc.templates
        self.using: list[str] = []  # templates being expanded, outermost first
        self.parsed = 0  # layer entries read, templates expanded (bounded by MAX_LAYERS)
        for tname in self.templates:
            where = ("templates", tname)
            check_name(tname, where, "template name")
            if tname == "vgg" or is_block(tname):
                raise SpecError(f"template {tname!r} has the name of a block; rename it", where)
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
        if self.doc.depth_multiple == 1.0 or n <= 1:
            return n
        return max(1, round(n * self.doc.depth_multiple))

    def scale_width(self, spec: BlockSpec) -> BlockSpec:
        wm = self.doc.width_multiple
        fields = [n for n in type(spec).width_fields if getattr(spec, n, None)]
        if wm == 1.0 or not fields:
            return spec
        update = {
            n: make_divisible(
                getattr(spec, n) * wm, self.doc.round_channels, min_value=self.doc.round_channels
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
        for i, item in enumerate(items):
            layer = self.layer(item, (*path, i), i)
            if layer.name in seen:
                raise SpecError(
                    f"duplicate layer name {layer.name!r} (also layer {seen[layer.name]})",
                    (*path, i, "name"),
                )
            seen[layer.name] = i
            out.append(layer)
        return tuple(out)

    def layer(self, item: Any, path: YamlPath, index: int) -> Layer:
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
        field_paths = item.get(PATHS_KEY, {})
        path = field_paths.get("", path)
        item, at = _unwrap_block(item, path)  # `at`: where the block's mapping is
        meta = {k: v for k, v in item.items() if k in LAYER_META}
        kinds = [k for k in item if k not in LAYER_META and k != PATHS_KEY]
        name = check_name(meta.get("name", str(index)), (*path, "name"))
        if name == "input":
            raise SpecError("'input' is reserved for the network input", (*path, "name"))
        repeat = meta.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 1000:
            raise SpecError("repeat is a whole number from 1 to 1000", (*path, "repeat"))
        aux = meta.get("aux", False)
        if not isinstance(aux, bool):
            raise SpecError("aux is true or false", (*path, "aux"))
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
            children = self.vgg(item[kind], (*at, kind))
            return Layer(name, None, children, inputs, 1, aux, path)
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
                    f"{kind} has no short form; write its parameters as a mapping", (*at, kind)
                )
            else:
                params = {cls.shorthand: params}
        if cls.arity != 1 and len(inputs) < 2 and cls.arity is None:
            raise SpecError(
                f"{kind} takes two or more inputs, e.g. {{{kind}: [-1, name]}}", (*path, "from")
            )
        if cls.arity not in (None, 1) and len(inputs) != cls.arity:
            raise SpecError(f"{kind} takes {cls.arity} inputs, got {len(inputs)}", (*path, "from"))
        if cls.arity == 1 and len(inputs) != 1:
            raise SpecError(f"{kind} takes one input, got {len(inputs)}", (*path, "from"))
        spec = self.block(cls, params, (*at, kind))
        return Layer(name, spec, None, inputs, self.scaled_repeat(repeat), aux, path, field_paths)

    def block(self, cls: type[BlockSpec], params: dict, path: YamlPath) -> BlockSpec:
        params = self.substitute(params, path)
        for key, value in self.defaults.items():
            if key in cls.model_fields and key not in params:
                params[key] = value
        if "num_classes" in cls.model_fields and "num_classes" not in params:
            params["num_classes"] = self.doc.num_classes
        try:
            spec = cls.model_validate(params)
        except ValidationError as e:
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

    # sugar ---------------------------------------------------------------------------------
    def vgg(self, value: Any, path: YamlPath) -> tuple[Layer, ...]:
        data = {"cfg": value} if isinstance(value, list) else value
        try:
            vgg = Vgg.model_validate(data)
        except ValidationError as e:
            raise pydantic_error(e, path if isinstance(value, dict) else path[:-1], Vgg) from None
        items: list[Any] = []
        pad = (vgg.kernel_size - 1) // 2
        for i, v in enumerate(vgg.cfg):
            src = {
                PATHS_KEY: {
                    "out_channels": (*path, "cfg", i) if isinstance(value, dict) else (*path, i)
                }
            }
            if v == "M":
                items.append({"maxpool": {"kernel_size": 2, "stride": 2}})
            elif v == "A":
                items.append({"avgpool": {"kernel_size": 2, "stride": 2}})
            else:
                conv = {"out_channels": v, "kernel_size": vgg.kernel_size, "padding": pad}
                items.append({"conv2d": conv, **src})
                if vgg.norm == "batch":
                    items.append("batchnorm")
                if vgg.activation != "none":
                    items.append(vgg.activation)
        return self.layers(items, path)


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
            "block is a block or template name, or a one-entry mapping like {conv: 64}", at
        )
    kind = next(iter(body))
    if kind in LAYER_META or kind == PATHS_KEY:
        raise SpecError(f"{kind!r} goes beside `block`, not inside it", (*at, kind))
    others = [k for k in item if k not in LAYER_META and k != PATHS_KEY]
    if others:
        raise SpecError(
            f"a layer has one block; found `block` and {others[0]!r}", (*path, others[0])
        )
    return {**{k: v for k, v in item.items() if k != "block"}, **body}, at


def _stage_list(value: Any, n: int, field_name: str) -> list[Any]:
    if isinstance(value, list):
        if len(value) != n:
            raise SpecError(
                f"{field_name} has {len(value)} entries for {n} stages", ("stages", field_name)
            )
        return value
    return [value] * n


def expand_stages(doc: SpecDocument) -> list[Any]:
    """``stem`` + ``stages`` + ``head`` -> torchvision-named layers (``conv1`` ... ``fc``)."""
    st = doc.stages
    assert st is not None
    n = len(st.layers)
    items: list[Any] = []
    stem = doc.stem or _default_stem()
    items += [
        {
            "name": "conv1",
            "conv2d": {
                "out_channels": stem.out_channels,
                "kernel_size": stem.kernel_size,
                "stride": stem.stride,
                "padding": stem.kernel_size // 2,
                "bias": False,
            },
            PATHS_KEY: {"out_channels": ("stem", "out_channels"), "": ("stem",)},
        },
        {"name": "bn1", "batchnorm": None, PATHS_KEY: {"": ("stem",)}},
        {"name": "relu", doc.defaults.activation or "relu": None, PATHS_KEY: {"": ("stem",)}},
    ]
    if stem.pool != "none":
        items.append(
            {
                "name": "maxpool" if stem.pool == "max" else "avgpool",
                f"{stem.pool}pool": {"kernel_size": 3, "stride": 2, "padding": 1},
                PATHS_KEY: {"": ("stem", "pool")},
            }
        )
    widths = st.widths or [64 * 2**i for i in range(n)]
    strides = st.strides or [1] + [2] * (n - 1)
    names = st.names or [f"layer{i + 1}" for i in range(n)]
    for fname, seq in (("widths", widths), ("strides", strides), ("names", names)):
        _stage_list(seq, n, fname)
    groups = _stage_list(st.groups, n, "groups")
    wpg = _stage_list(st.width_per_group, n, "width_per_group")
    dilate = _stage_list(st.dilate, n, "dilate")
    attention = _stage_list(st.attention, n, "attention")
    try:
        cls = get_block(st.block)
    except RegistryError as e:
        raise SpecError(str(e), ("stages", "block")) from None
    fields = cls.model_fields
    width_key = "channels" if "channels" in fields else "out_channels"
    if width_key not in fields or "stride" not in fields:
        raise SpecError(
            f"block {st.block!r} has no channels/out_channels and stride fields, "
            "so it cannot form stages",
            ("stages", "block"),
        )
    dilation = 1
    for s in range(n):
        blocks = []
        stride = strides[s]
        previous_dilation = dilation
        if dilate[s]:
            dilation *= stride
            stride = 1
        for b in range(max(0, doc_depth(doc, st.layers[s]))):
            params: dict[str, Any] = {width_key: widths[s], "stride": stride if b == 0 else 1}
            paths: dict[str, YamlPath] = {width_key: ("stages", "widths", s)}
            optional = {
                "groups": (groups[s], ("stages", "groups")),
                "width_per_group": (wpg[s], ("stages", "width_per_group")),
                "attention": (attention[s], ("stages", "attention")),
                "attention_reduction": (st.attention_reduction, ("stages", "attention_reduction")),
                "expansion": (st.expansion, ("stages", "expansion")),
                "zero_init_last": (st.zero_init_last, ("stages", "zero_init_last")),
                "dilation": (dilation, ("stages", "dilate")),
                "first_dilation": (previous_dilation if b == 0 else None, ("stages", "dilate")),
            }
            for key, (value, src) in optional.items():
                if value is None:
                    continue
                if key in fields:
                    params[key] = value
                    paths[key] = src
                elif value != _STAGE_NEUTRAL.get(key):
                    raise SpecError(f"block {st.block!r} has no field {key!r}", src)
            paths[""] = ("stages", "layers", s)
            params.update(st.block_args)
            blocks.append({st.block: params, PATHS_KEY: paths})
        if blocks:
            items.append(
                {"name": names[s], "layers": blocks, PATHS_KEY: {"": ("stages", "layers", s)}}
            )
    if doc.head != "none":
        head = doc.head or _default_head()
        pool = "adaptive_avgpool" if head.pool == "avg" else "adaptive_maxpool"
        at = {PATHS_KEY: {"": ("head",)}}
        items += [
            {"name": "avgpool" if head.pool == "avg" else "maxpool_head", pool: 1, **at},
            {"name": "flatten", "flatten": None, **at},
        ]
        if head.dropout:
            items.append({"name": "dropout", "dropout": head.dropout, **at})
        items.append({"name": "fc", "linear": "$num_classes", **at})
    return items


_STAGE_NEUTRAL: dict[str, Any] = {
    "groups": 1,
    "width_per_group": 64,
    "attention": "none",
    "attention_reduction": 16,
    "zero_init_last": False,
    "dilation": 1,
    "first_dilation": 1,
}


def doc_depth(doc: SpecDocument, n: int) -> int:
    return n if doc.depth_multiple == 1.0 or n <= 1 else max(1, round(n * doc.depth_multiple))


def _default_stem():
    from nasblocks.spec.models import Stem

    return Stem()


def _default_head():
    from nasblocks.spec.models import Head

    return Head()


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
    parser = _Parser(doc)
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
    return Spec(doc, layers, raw, file, positions)
