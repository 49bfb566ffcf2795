"""Presets: the standard networks as short YAML specs (``nasblocks.build("resnet50")``)."""

from __future__ import annotations

from pathlib import Path

from nasblocks.errors import SpecError

PRESET_DIR = Path(__file__).parent


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        from nasblocks.registry import suggest

        raise SpecError(
            f"no such file or preset {name!r}{suggest(name, preset_names())}",
            file=name, line=1, column=1,
        )
    return path
