"""Loading user blocks: ``--plugin mod`` / ``plugins: [...]`` / ``nasblocks.blocks`` entry points.

A plugin is code the user names explicitly. ``--plugin`` and entry points are typed or installed
by the user and load as asked; ``plugins:`` inside a spec is text in a file someone may have
sent, so it loads only after the user opted in (``--allow-plugins``, ``allow_plugins=True``),
unless the user loaded that plugin already. A spec never imports anything else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from nasblocks.errors import SpecError, YamlPath

_loaded: dict[str, ModuleType] = {}  # by the name given and, for files, the resolved path
_spec_plugins_allowed = False


def allow_spec_plugins(allowed: bool = True) -> None:
    """Let ``plugins:`` in every spec this process loads import what it names (the CLI's
    ``--allow-plugins``); ``load_spec(..., allow_plugins=True)`` allows it for one call."""
    global _spec_plugins_allowed
    _spec_plugins_allowed = allowed


def spec_plugins_allowed() -> bool:
    return _spec_plugins_allowed


def _file(name: str, base: Path | None) -> Path:
    file = Path(name).expanduser()
    return base / file if not file.is_absolute() and base is not None else file


def is_loaded(name: str, base: Path | None = None) -> bool:
    """Whether the plugin ``name`` (a ``.py`` file relative to ``base``, or a module) is loaded."""
    if name in _loaded:
        return True
    return name.endswith(".py") and str(_file(name, base).resolve()) in _loaded


def load_plugin(name: str, base: Path | None = None, path: YamlPath = ("--plugin",)) -> None:
    """Import a module by dotted name, or a ``.py`` file (relative to ``base``)."""
    if is_loaded(name, base):
        return
    if name.endswith(".py"):
        file = _file(name, base)
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
        _loaded[str(file.resolve())] = module
    else:
        module = _import_module(name, path)
    _loaded[name] = module


def _import_module(name: str, path: YamlPath) -> ModuleType:
    """``import name``; like ``python -m``, a module in the current folder is found too."""
    added = False
    try:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name.partition(".")[0] or "" in sys.path or os.getcwd() in sys.path:
                raise
            sys.path.insert(0, os.getcwd())
            added = True
            return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise SpecError(f"plugin module {name!r} not found ({e})", path) from None
    except SpecError:
        raise
    except Exception as e:
        raise SpecError(f"plugin {name!r} failed to load: {type(e).__name__}: {e}", path) from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_plugins(
    names: Iterable[str], base: Path | None = None, path: YamlPath = ("--plugin",)
) -> None:
    for i, name in enumerate(names):
        load_plugin(name, base, (*path, i) if path and path[0] == "plugins" else path)
