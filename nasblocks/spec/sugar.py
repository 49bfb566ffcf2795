"""Sugar: short forms that expand into the general layer list before it is parsed.

- ``stem`` + ``stages`` + ``head`` (ResNet style): torchvision-named layers (``conv1`` ...
  ``fc``), one group per stage (:func:`expand_stages`);
- a ``vgg`` cfg list (``[64, M, 128, M]``): conv / norm / activation / pool layers
  (:func:`vgg_items`).

What sugar writes is wrapped in :class:`Generated` with the source path of each field, so
that an error in a generated layer points at the line the user wrote; the layer data itself
carries no positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nasblocks.blocks import _fields as f
from nasblocks.errors import RegistryError, SpecError, YamlPath
from nasblocks.registry import get_block
from nasblocks.spec.located import pydantic_error
from nasblocks.spec.models import SpecDocument, Vgg


@dataclass(frozen=True)
class Generated:
    """A layer item written by sugar; ``paths``: field -> where the user wrote its value
    (``""``: the layer as a whole)."""

    item: dict[str, Any]
    paths: dict[str, YamlPath] = field(default_factory=dict)


def scaled_depth(n: int, multiple: float) -> int:
    """A depth (``repeat``, blocks per stage) scaled by ``depth_multiple``; 0 and 1 stay."""
    return n if multiple == 1.0 or n <= 1 else max(1, round(n * multiple))


def _stage_list(value: Any, n: int, field_name: str) -> list[Any]:
    if isinstance(value, list):
        if len(value) != n:
            raise SpecError(
                f"{field_name} has {len(value)} entries for {n} stages",
                ("stages", field_name),
            )
        return value
    return [value] * n


def expand_stages(doc: SpecDocument) -> list[Generated]:
    """``stem`` + ``stages`` + ``head`` -> torchvision-named layers (``conv1`` ... ``fc``)."""
    st = doc.stages
    assert st is not None
    n = len(st.layers)
    stem = doc.stem or _default_stem()
    activation = doc.defaults.activation or "relu"
    stem_items: list[dict[str, Any]] = [
        {"name": "conv1", **_stem_conv(stem, activation)},
        {"name": "bn1", "batchnorm": None},
        {"name": "relu", **f.activation_layer(activation)},
    ]
    stem_at: dict[str, YamlPath] = {"": ("stem",)}
    items: list[Any] = [Generated(item, stem_at) for item in stem_items]
    items[0] = Generated(stem_items[0], {**stem_at, "out_channels": ("stem", "out_channels")})
    if stem.pool != "none":
        pool = {
            "name": "maxpool" if stem.pool == "max" else "avgpool",
            f"{stem.pool}pool": {"kernel_size": 3, "stride": 2, "padding": 1},
        }
        items.append(Generated(pool, {"": ("stem", "pool")}))
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
    depths = [max(0, scaled_depth(d, doc.depth_multiple)) for d in st.layers]
    total_blocks, index = sum(depths), 0
    dilation = 1
    for s in range(n):
        blocks = []
        stride = strides[s]
        previous_dilation = dilation
        if dilate[s]:
            dilation *= stride
            stride = 1
        for b in range(depths[s]):
            drop = st.drop_path_rate * index / max(1, total_blocks - 1)
            index += 1
            params: dict[str, Any] = {
                width_key: widths[s],
                "stride": stride if b == 0 else 1,
            }
            paths: dict[str, YamlPath] = {width_key: ("stages", "widths", s)}
            optional = {
                "groups": (groups[s], ("stages", "groups")),
                "width_per_group": (wpg[s], ("stages", "width_per_group")),
                "attention": (attention[s], ("stages", "attention")),
                "attention_reduction": (
                    st.attention_reduction,
                    ("stages", "attention_reduction"),
                ),
                "expansion": (st.expansion, ("stages", "expansion")),
                "zero_init_last": (st.zero_init_last, ("stages", "zero_init_last")),
                "avg_down": (st.avg_down, ("stages", "avg_down")),
                "drop_path": (drop, ("stages", "drop_path_rate")),
                "dilation": (dilation, ("stages", "dilate")),
                "first_dilation": (
                    previous_dilation if b == 0 else None,
                    ("stages", "dilate"),
                ),
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
            blocks.append(Generated({st.block: params}, paths))
        if blocks:
            stage = {"name": names[s], "layers": blocks}
            items.append(Generated(stage, {"": ("stages", "layers", s)}))
    if doc.head != "none":
        head = doc.head or _default_head()
        head_pool = "adaptive_avgpool" if head.pool == "avg" else "adaptive_maxpool"
        head_items: list[dict[str, Any]] = [
            {"name": "avgpool" if head.pool == "avg" else "maxpool_head", head_pool: 1},
            {"name": "flatten", "flatten": None},
        ]
        if head.dropout:
            head_items.append({"name": "dropout", "dropout": head.dropout})
        head_items.append({"name": "fc", "linear": "$num_classes"})
        items += [Generated(item, {"": ("head",)}) for item in head_items]
    return items


def _stem_conv(stem: Any, activation: str | f.ActivationArgs) -> dict[str, Any]:
    """``conv1``: one conv, or (deep stems) a group of three 3x3 convs, the first strided."""

    def conv(out: int, k: int, stride: int) -> dict[str, Any]:
        return {
            "conv2d": {
                "out_channels": out,
                "kernel_size": k,
                "stride": stride,
                "padding": k // 2,
                "bias": False,
            }
        }

    if stem.type == "plain":
        return conv(stem.out_channels, stem.kernel_size, stem.stride)
    width = stem.width or max(1, stem.out_channels // 2)
    first = 3 * (width // 4) if stem.type == "deep_tiered" else width
    if first < 1:
        raise SpecError(f"a deep_tiered stem of width {width} has no channel", ("stem", "width"))
    norm_act = ["batchnorm", f.activation_layer(activation)]
    layers = [
        conv(first, 3, stem.stride),
        *norm_act,
        conv(width, 3, 1),
        *norm_act,
        conv(stem.out_channels, 3, 1),
    ]
    return {"layers": layers}


_STAGE_NEUTRAL: dict[str, Any] = {
    "groups": 1,
    "width_per_group": 64,
    "attention": "none",
    "attention_reduction": 16,
    "zero_init_last": False,
    "avg_down": False,
    "drop_path": 0.0,
    "dilation": 1,
    "first_dilation": 1,
}


def _default_stem():
    from nasblocks.spec.models import Stem

    return Stem()


def _default_head():
    from nasblocks.spec.models import Head

    return Head()


def vgg_items(value: Any, path: YamlPath) -> list[Generated | dict | str]:
    """A ``vgg`` cfg list (or ``{cfg: [...], kernel_size, norm, activation}``) as layer items:
    each number a conv (its ``out_channels`` located at the number), ``M``/``A`` a pool."""
    data = {"cfg": value} if isinstance(value, list) else value
    try:
        vgg = Vgg.model_validate(data)
    except ValidationError as e:
        raise pydantic_error(e, path if isinstance(value, dict) else path[:-1], Vgg) from None
    items: list[Generated | dict | str] = []
    pad = (vgg.kernel_size - 1) // 2
    for i, v in enumerate(vgg.cfg):
        if v == "M":
            items.append({"maxpool": {"kernel_size": 2, "stride": 2}})
        elif v == "A":
            items.append({"avgpool": {"kernel_size": 2, "stride": 2}})
        else:
            at = (*path, "cfg", i) if isinstance(value, dict) else (*path, i)
            conv = {"out_channels": v, "kernel_size": vgg.kernel_size, "padding": pad}
            items.append(Generated({"conv2d": conv}, {"out_channels": at}))
            if vgg.norm == "batch":
                items.append("batchnorm")
            if vgg.activation != "none":
                items.append(f.activation_layer(vgg.activation))
    return items
