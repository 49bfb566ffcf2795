"""Loading user blocks: ``--plugin mod`` / ``plugins: [...]`` / ``nasblocks.blocks`` entry points.

A plugin is code the user names explicitly; a spec never imports anything else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from nasblocks.errors import SpecError, YamlPath

_loaded: dict[str, object] = {}


def load_plugin(name: str, base: Path | None = None, path: YamlPath = ("--plugin",)) -> None:
    """Import a module by dotted name, or a ``.py`` file (relative to ``base``)."""
    if name in _loaded:
        return
    if name.endswith(".py"):
        file = Path(name)
        if not file.is_absolute() and base is not None:
            file = base / file
        if not file.is_file():
            raise SpecError(f"plugin file {name!r} not found", path)
        mod_name = "nasblocks_plugin_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]
        spec = importlib.util.spec_from_file_location(mod_name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except SpecError:
            raise
        except Exception as e:
            sys.modules.pop(mod_name, None)
            raise SpecError(
                f"plugin {name!r} failed to load: {type(e).__name__}: {e}", path
            ) from None
    else:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise SpecError(f"plugin module {name!r} not found ({e})", path) from None
        except SpecError:
            raise
        except Exception as e:
            raise SpecError(
                f"plugin {name!r} failed to load: {type(e).__name__}: {e}", path
            ) from None
    _loaded[name] = module


def load_plugins(
    names: Iterable[str], base: Path | None = None, path: YamlPath = ("--plugin",)
) -> None:
    for i, name in enumerate(names):
        load_plugin(name, base, (*path, i) if path and path[0] == "plugins" else path)
