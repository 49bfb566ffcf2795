"""YAML -> validated, frozen :class:`Spec` (torch-free)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nasblocks.errors import SpecError
from nasblocks.spec.located import pydantic_error
from nasblocks.spec.models import SpecDocument
from nasblocks.spec.overrides import apply_overrides
from nasblocks.spec.parser import normalize
from nasblocks.spec.plan import Plan, plan
from nasblocks.spec.types import Layer, Spec
from nasblocks.spec.yamlio import load_yaml, parse_yaml

__all__ = [
    "Layer",
    "Plan",
    "Spec",
    "SpecDocument",
    "apply_overrides",
    "load_spec",
    "parse_yaml",
    "plan",
]


def _locate_source(source: str | Path) -> Path:
    p = Path(source)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(source):
        return p
    from nasblocks.presets import preset_path

    return preset_path(str(source))


def load_spec(
    source: str | Path | Mapping[str, Any] | Spec,
    overrides: Mapping[str, Any] | None = None,
    *,
    allow_plugins: bool = False,
) -> Spec:
    """Read, expand and validate a spec; check every shape.

    ``source`` is a YAML file, a preset name, a mapping, or a Spec (returned as is when
    there are no overrides). ``overrides`` maps dotted paths to values
    (``{"stages.groups": 32, "num_classes": 10}``). ``allow_plugins``: import the Python
    files and modules the spec's ``plugins:`` names (off by default: a spec is data; plugins
    the user loaded already, with ``--plugin`` or an entry point, need no opt-in). Raises
    :class:`SpecError` located in the source file.
    """
    if isinstance(source, Spec):
        if not overrides:
            return source
        file, positions, raw = source.file, dict(source.positions), source.raw
    elif isinstance(source, Mapping):
        file, positions, raw = None, {}, copy.deepcopy(dict(source))
    else:
        path = _locate_source(source)
        file = str(path)
        raw, positions = load_yaml(path)
    try:
        if not isinstance(raw, dict):
            raise SpecError(
                f"a spec is a mapping (name:, input:, layers: ...), got a {type(raw).__name__}"
            )
        if overrides:
            raw = apply_overrides(raw, overrides)
        _load_plugins(raw.get("plugins"), file, allow_plugins)
        try:
            doc = SpecDocument.model_validate(raw)
        except ValidationError as e:
            raise pydantic_error(e, (), _model_at(e)) from None
        spec = normalize(doc, raw, file, positions)
    except SpecError as e:
        raise e.located(file, positions) from None
    plan(spec)
    return spec


def _model_at(err: ValidationError):
    """The pydantic model whose field list best explains an 'unknown field' error."""
    from nasblocks.spec import models

    loc = err.errors()[0]["loc"]
    if len(loc) >= 2 and isinstance(loc[0], str):
        return {
            "stem": models.Stem,
            "stages": models.Stages,
            "head": models.Head,
            "defaults": models.Defaults,
        }.get(loc[0], SpecDocument)
    return SpecDocument


def _load_plugins(plugins: Any, file: str | None, allow: bool) -> None:
    if not plugins:
        return
    from nasblocks import plugins as registry

    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise SpecError("plugins is a list of module names or .py files", ("plugins",))
    base = Path(file).parent if file else Path.cwd()
    allow = allow or registry.spec_plugins_allowed()
    for i, name in enumerate(plugins):
        if registry.is_loaded(name, base):
            continue
        if not allow:
            raise SpecError(
                f"this spec imports plugin {name!r}, which runs its code; pass --allow-plugins "
                "(allow_plugins=True) if you trust it, or load it yourself with --plugin",
                ("plugins", i),
            )
        registry.load_plugin(name, base, ("plugins", i))
