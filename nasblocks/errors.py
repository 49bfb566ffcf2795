"""One exception hierarchy for everything a user can get wrong.

The CLI prints ``str(error)`` (one line, ``FILE:LINE:COL: yaml.path: message``) and exits 2;
anything else escaping is a bug in nasblocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

PathItem = str | int
YamlPath = tuple[PathItem, ...]


def format_path(path: Sequence[PathItem]) -> str:
    """``("layers", 7, "groups")`` -> ``layers[7].groups``; the empty path is ``(root)``."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        elif str(item).isprintable() and not any(c in str(item) for c in " \"'"):
            out += ("." if out else "") + str(item)
        else:  # a key with spaces, quotes or newlines: quoted, so the message stays one line
            out += f"[{json.dumps(str(item))}]"
    return out or "(root)"


class NasBlocksError(Exception):
    """Base of every error nasblocks raises on purpose."""


class SpecError(NasBlocksError, ValueError):
    """A mistake in a spec, a search space or a flag, located in its source.

    ``file``, ``line`` and ``column`` (1-based) point at the offending YAML node when known;
    ``path`` is the YAML path inside the document.
    """

    def __init__(
        self,
        message: str,
        path: Sequence[PathItem] = (),
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.path: YamlPath = tuple(path)
        self.file = file
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {format_path(self.path)}: {self.message}"

    def located(self, file: str | None, positions: Mapping[YamlPath, Any] | None) -> SpecError:
        """Return a copy pointing at the closest known position of ``self.path``."""
        line = column = None
        if positions:
            path = self.path
            while path not in positions and path:
                path = path[:-1]
            line, column = positions.get(path, (None, None))
        return type(self)(self.message, self.path, file or self.file, line, column)


class ShapeError(NasBlocksError, ValueError):
    """Raised by a block's shape contract; the builder turns it into a located SpecError.

    ``field`` names the block parameter at fault (``groups``), if any.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


class RegistryError(NasBlocksError, KeyError):
    """Unknown or duplicate block name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class BuildError(NasBlocksError):
    """A spec that validated but could not be turned into a module (a bug, or a plugin's)."""


class SearchError(NasBlocksError):
    """A search that cannot run as asked (bad storage URL, impossible settings)."""
