"""Presets: the standard networks as short YAML specs (``nasblocks.build("resnet50")``).

Each ``NAME.yaml`` here is a complete spec; ``preset_info`` reads the few header fields a
listing needs without validating or building anything (and without torch).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nasblocks.errors import SpecError

PRESET_DIR = Path(__file__).parent


@dataclass(frozen=True)
class PresetInfo:
    """The header of a preset file: what it is and where it comes from."""

    name: str
    description: str
    source: str
    input: tuple[int, ...]
    num_classes: int
    path: Path


def natural_key(name: str) -> list[int | str]:
    """``resnet101`` -> ``["resnet", 101, ""]``: numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def preset_names(pattern: str | Sequence[str] | None = None) -> list[str]:
    """Every preset name in natural order (``resnet18`` before ``resnet101``, as timm's
    ``list_models`` sorts); with ``pattern`` (``"resnet*"``, or several), those matching one
    of them, shell-style as timm's ``list_models`` filters."""
    names = sorted((p.stem for p in PRESET_DIR.glob("*.yaml")), key=natural_key)
    if pattern is None:
        return names
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


list_presets = preset_names  # timm's habit: timm.list_models("resnet*")


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; unknown names raise with the closest valid ones."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        from nasblocks.registry import suggest

        raise SpecError(
            f"no such file or preset {name!r}{suggest(name, preset_names())}",
            file=name,
            line=1,
            column=1,
        )
    return path


def preset_info(name: str) -> PresetInfo:
    """Name, description, source paper, input shape and class count of a preset."""
    import yaml

    path = preset_path(name)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return PresetInfo(
        name=str(doc.get("name", name)),
        description=str(doc.get("description", "")),
        source=str(doc.get("source", "")),
        input=tuple(doc.get("input", (3, 224, 224))),
        num_classes=int(doc.get("num_classes", 1000)),
        path=path,
    )
