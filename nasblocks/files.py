"""Files nasblocks writes: whole or not at all, and one clear line when the disk says no.

:func:`write_atomic` writes a temporary file beside the target and renames it over the target
(``os.replace``), so a reader, a crash, Ctrl-C or a full disk never sees a half-written
``trials.csv`` or ``best.pt``; the temporary file is removed when writing fails. An
``OSError`` becomes :class:`OutputError`, whose message names the file and the cause (no space
left, read-only file system, permission denied). Torch-free: torch and matplotlib pass
their own writer (``lambda tmp: torch.save(obj, tmp)``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nasblocks.errors import NasBlocksError

REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}
"""The causes an ``OSError`` while writing is reported with (else its ``strerror``)."""

Writer = Callable[[Path], object]


class OutputError(NasBlocksError):
    """A file or folder that cannot be written: disk full, read-only, no permission, not a
    folder. ``errno`` is the operating system's code when one caused it."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)


def reason(error: OSError) -> str:
    """A short cause for an ``OSError``: ``no space left on device``."""
    return REASONS.get(error.errno or -1) or error.strerror or type(error).__name__


def output_error(error: OSError, path: str | Path, doing: str = "cannot write") -> OutputError:
    return OutputError(f"{doing} {path}: {reason(error)}", error.errno)


def write_atomic(path: str | Path, data: str | bytes | Writer) -> Path:
    """Write ``data`` (text, bytes, or a function that writes the file at the path it is
    given) to ``path`` atomically; returns ``path``. Raises :class:`OutputError`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            data(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise output_error(e, path) from None
        raise
    return path


def make_folder(path: str | Path, what: str = "--out") -> Path:
    """``mkdir -p`` with one clear line when it cannot be (a file in the way, read-only)."""
    path = Path(path)
    check_folder(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{what} {path}: cannot create the folder: {reason(e)}", e.errno
        ) from None
    return path


def check_folder(path: str | Path, what: str = "--out") -> None:
    """Refuse, without writing anything, a folder that cannot be used for output: ``path``
    (or a folder above it) is a file, or the first existing folder is not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: is a file, expected a folder", errno.ENOTDIR)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is a file, not a folder", errno.ENOTDIR)
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only(existing) else errno.EACCES
        shown = path if existing == path else f"{path} (in {existing})"
        raise OutputError(f"{what} {shown}: cannot write here: {REASONS[code]}", code)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # pragma: no cover (no statvfs)
        return False


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """``rows`` as a CSV file with a header, written whole or not at all (:func:`write_atomic`);
    the columns in first-seen order, a row's missing ones empty."""
    import csv

    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["number"], restval="")
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(path, write)
