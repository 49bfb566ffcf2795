"""Dotted-path overrides: `stages.groups=32` (CLI) or `**{"stages.groups": 32}` (Python)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from nasblocks.errors import SpecError, YamlPath

ALIASES: dict[str, YamlPath] = {"in_channels": ("input", 0)}


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"stages.groups=32"`` -> ``("stages.groups", 32)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set expects PATH=VALUE, got {text!r}", ("--set",))
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _kind(value: Any) -> str:
    name = type(value).__name__
    return "text" if isinstance(value, str) else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def apply_overrides(raw: dict, overrides: Mapping[str, Any]) -> dict:
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        if dotted == "input_size":
            size = [value, value] if isinstance(value, int) else list(value)
            out["input"] = [*(out.get("input") or [3, 224, 224])[:1], *size]
            continue
        # "layers.1.conv.out_channels" or, as errors print paths, "layers[1].conv.out_channels"
        parts = dotted.replace("[", ".").replace("]", "").split(".")
        keys: tuple[Any, ...] = ALIASES.get(dotted) or tuple(
            int(k) if k.lstrip("-").isdigit() else k for k in parts
        )
        if dotted in ALIASES and "input" not in out:
            out["input"] = [3, 224, 224]
        node: Any = out
        for depth, key in enumerate(keys[:-1]):
            here = keys[: depth + 1]
            if isinstance(node, dict):
                if key not in node or node[key] is None:
                    node[key] = {}
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
                node = node[key]
            elif depth > 0 and not isinstance(node, list):  # a value the file wrote: blame it
                raise SpecError(
                    f"this is {_kind(node)}, so override {dotted!r} cannot reach {key!r} in it",
                    keys[:depth],
                )
            elif depth > 0 and not isinstance(key, int):
                raise SpecError(
                    f"this is a list, so override {dotted!r} cannot reach {key!r} in it (a "
                    "list takes an index)",
                    keys[:depth],
                )
            else:
                raise SpecError(f"override {dotted!r}: nothing at this path", here)
        last = keys[-1]
        if (
            isinstance(node, dict)
            or isinstance(node, list)
            and isinstance(last, int)
            and -len(node) <= last < len(node)
        ):
            node[last] = copy.deepcopy(value)
        elif len(keys) > 1 and not isinstance(node, list):  # a value the file wrote
            raise SpecError(
                f"this is {_kind(node)}, so override {dotted!r} cannot reach {last!r} in it",
                keys[:-1],
            )
        else:
            raise SpecError(f"override {dotted!r}: nothing at this path", keys)
    return out
