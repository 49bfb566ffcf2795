"""Sugar: ``block_stages``, stages of sibling blocks written like timm's EfficientNet
``arch_def`` (:class:`~nasblocks.spec.models.BlockStages` is the reference).

Each stage becomes a group named by its index and each block a sibling inside it, so
``{name: blocks, block_stages: [...]}`` gives timm's ``blocks.<stage>.<index>`` keys; repeats
are expanded here (after timm's depth scaling), not stacked as copies of one layer. What is
written is :class:`~nasblocks.spec.sugar.Generated`, each field located where the user wrote
it (the entry, or ``defaults``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from nasblocks.errors import RegistryError, SpecError, YamlPath
from nasblocks.registry import BlockSpec, get_block, suggest
from nasblocks.spec.located import pydantic_error
from nasblocks.spec.models import BlockStages
from nasblocks.spec.names import MAX_LAYERS
from nasblocks.spec.sugar import Generated

ENTRY_KEYS = ("block", "repeat")
"""Keys of an entry that are not block fields."""


def stage_depths(repeats: list[int], multiple: float, rounding: str = "ceil") -> list[int]:
    """timm's ``_scale_stage_depth``: the stage's total scaled (ceil, or round to at least 1),
    then shared among the entries from the last, each keeping at least one block."""
    total = sum(repeats)
    if rounding == "round":
        scaled = max(1, round(total * multiple))
    else:
        scaled = int(math.ceil(total * multiple))
    out = []
    for r in reversed(repeats):
        share = max(1, round(r / total * scaled))
        out.append(share)
        total -= r
        scaled -= share
    return out[::-1]


@dataclass(frozen=True)
class _Entry:
    """One entry, resolved: its block kind, fields, where each was written, and repeats."""

    cls: type[BlockSpec]
    params: dict[str, Any]
    paths: dict[str, YamlPath]
    repeat: int


def block_stage_items(
    value: Any,
    path: YamlPath,
    depth_multiple: float,
    substitute: Callable[[Any, YamlPath], Any],
) -> list[Generated]:
    """The stages of ``block_stages`` (at ``path``) as groups of sibling blocks."""
    bs, base = _validate(substitute(value, path), path)
    defaults_at: YamlPath = (*path, "defaults")
    used: set[str] = set()  # defaults some block has
    stages = [
        [_entry(entry, at, i, bs.defaults, defaults_at, used) for i, (entry, at) in enumerate(st)]
        for st in (_entries(stage, (*base, s)) for s, stage in enumerate(bs.stages))
    ]
    for key in bs.defaults:
        if key != "block" and key not in used:
            fields = {f for stage in stages for e in stage for f in e.cls.model_fields}
            raise SpecError(
                f"no block of these stages has a field {key!r}{suggest(key, fields)}",
                (*defaults_at, key),
            )
    depths = [
        stage_depths([e.repeat for e in stage], depth_multiple, bs.depth_rounding)
        for stage in stages
    ]
    total = sum(map(sum, depths))
    if total > MAX_LAYERS:
        raise SpecError(f"{total:,} blocks; a network has at most {MAX_LAYERS:,}", path)
    index = 0  # of the block in the network, for the drop-path schedule
    items: list[Generated] = []
    for s, (stage, counts) in enumerate(zip(stages, depths, strict=True)):
        blocks = []
        for entry, n in zip(stage, counts, strict=True):
            for copy in range(n):
                params = dict(entry.params)
                if copy > 0 and "stride" in params:
                    params["stride"] = 1  # timm: only a stage's first block is strided
                if bs.drop_path_rate:
                    if "drop_path" not in entry.cls.model_fields:
                        raise SpecError(
                            f"block {entry.cls.kind!r} has no field 'drop_path'",
                            (*path, "drop_path_rate"),
                        )
                    params.setdefault("drop_path", bs.drop_path_rate * index / total)
                index += 1
                blocks.append(Generated({entry.cls.kind: params}, entry.paths))
        items.append(Generated({"layers": blocks}, {"": (*base, s)}))
    return items


def _validate(value: Any, path: YamlPath) -> tuple[BlockStages, YamlPath]:
    """The :class:`BlockStages` of the short (a list) or the long form, and where its stages
    list is."""
    short = isinstance(value, list)
    for key in value if isinstance(value, dict) else ():  # before pydantic's `missing stages`
        if key not in BlockStages.model_fields:
            options = list(BlockStages.model_fields)
            raise SpecError(f"unknown field {key!r}{suggest(str(key), options)}", (*path, key))
    try:
        bs = BlockStages.model_validate({"stages": value} if short else value)
    except ValidationError as e:
        err = pydantic_error(e, (), BlockStages)
        at = err.path[1:] if short and err.path[:1] == ("stages",) else err.path
        raise SpecError(err.message, (*path, *at)) from None
    return bs, path if short else (*path, "stages")


def _entry(
    entry: dict[str, Any],
    at: YamlPath,
    index: int,
    defaults: dict[str, Any],
    defaults_at: YamlPath,
    used: set[str],
) -> _Entry:
    kind = entry.get("block", defaults.get("block"))
    kind_at = (*at, "block") if "block" in entry else (*defaults_at, "block")
    if kind is None:
        raise SpecError("an entry needs a `block` (or give defaults.block)", at)
    if not isinstance(kind, str):
        raise SpecError("block is a block name, e.g. mb_conv", kind_at)
    try:
        cls = get_block(kind)
    except RegistryError as e:
        raise SpecError(str(e), kind_at) from None
    params, paths = _params(cls, entry, at, defaults, defaults_at, used)
    if index > 0 and params.get("stride", 1) != 1:
        raise SpecError(
            "only a stage's first entry is strided (timm's rule); start a new stage",
            paths["stride"],
        )
    return _Entry(cls, params, paths, _repeat(entry, at))


def _entries(stage: Any, at: YamlPath) -> list[tuple[dict[str, Any], YamlPath]]:
    """A stage's entries with their paths: one mapping, or a non-empty list of them."""
    if isinstance(stage, dict):
        return [(stage, at)]
    if not isinstance(stage, list) or not stage:
        raise SpecError(
            "a stage is an entry like {block: mb_conv, out_channels: 24} or a list of them", at
        )
    out = []
    for i, entry in enumerate(stage):
        if not isinstance(entry, dict):
            raise SpecError(
                "an entry is a mapping like {block: mb_conv, out_channels: 24}", (*at, i)
            )
        out.append((entry, (*at, i)))
    return out


def _repeat(entry: dict[str, Any], at: YamlPath) -> int:
    n = entry.get("repeat", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
        raise SpecError("repeat is a whole number from 1 to 1000", (*at, "repeat"))
    return n


def _params(
    cls: type[BlockSpec],
    entry: dict[str, Any],
    at: YamlPath,
    defaults: dict[str, Any],
    defaults_at: YamlPath,
    used: set[str],
) -> tuple[dict[str, Any], dict[str, YamlPath]]:
    """The block's fields (the entry's over the defaults the block has) and where each is
    written; fields left to the block's own default point at the entry."""
    params: dict[str, Any] = {}
    paths: dict[str, YamlPath] = {"": at, **{k: at for k in cls.model_fields}}
    for key, v in defaults.items():
        if key in cls.model_fields:
            used.add(key)
            if key not in entry:
                params[key], paths[key] = v, (*defaults_at, key)
    for key, v in entry.items():
        if key not in ENTRY_KEYS:
            params[key], paths[str(key)] = v, (*at, key)
    missing = [k for k, info in cls.model_fields.items() if info.is_required() and k not in params]
    if missing:
        raise SpecError(f"missing required field {missing[0]!r} of {cls.kind}", at)
    return params, paths
