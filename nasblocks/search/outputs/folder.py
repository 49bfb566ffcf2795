"""A search's output folder: one study per folder, resumed by default, never overwritten.

OUT holds one study. Its ``run.json`` names the study and records its *fingerprint*; a run
whose space has another fingerprint, or another study name, is refused (another ``--out``,
or ``--fresh``), and so is a study database in OUT that is empty or not a database. Nothing
is ever deleted: ``--fresh`` moves the folder's contents to ``OUT/previous-<time>/``.

The fingerprint hashes what makes the trials of two runs comparable:

- ``architecture``: the spec part of the space (after ``--set``), search nodes included;
- ``training``: ``search.train`` but ``epochs`` (that is budget) and where and how fast a
  trial runs (``device``, ``compile``, ``loader_workers``);
- ``data``: dataset, validation fraction, input size, synthetic shape (not where files live);
- ``objectives`` with their directions (and the latency settings when latency is measured),
  ``constraints`` and the ``seed`` (it fixes the validation split and the training).

Editing anything else resumes the study: the budget (``--trials``, ``--timeout``, epochs per
trial: trial keys hold the epochs, so duplicates are still told apart), sampler, pruner,
threads, comments and layout of the file, and its path (files and folders move). The study
keeps the fingerprint in a user attribute too, which guards a study on a database server
shared by several folders.

Paths in ``run.json`` and in trials' ``weights`` are relative to OUT, so a moved or copied
folder reports and resumes its own study (:func:`storage_in_file`, :func:`resolve_storage`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasblocks.errors import SearchError
from nasblocks.files import REASONS, OutputError, reason
from nasblocks.search.backends.storage import JOURNAL, journal_storage, public_url

if TYPE_CHECKING:
    import optuna

    from nasblocks.space import SearchSpace

RUN_FILE = "run.json"
DB_FILE = "study.db"
PREVIOUS = "previous-"
FINGERPRINT_ATTR = "fingerprint"
PARTS = {
    "architecture": "the architecture space",
    "training": "the training settings",
    "data": "the data",
    "objectives": "the objectives",
    "constraints": "the constraints",
    "seed": "the seed",
}
RUNTIME_TRAIN_KEYS = ("epochs", "device", "compile", "loader_workers")


# -- fingerprint ------------------------------------------------------------------------------


def fingerprint(space: SearchSpace) -> dict[str, Any]:
    """``{"hash": ..., "parts": {part: hash}}`` of what defines the study (module doc)."""
    s = space.settings
    spec_part = {k: v for k, v in space.raw.items() if k not in ("search", "name")}
    data = s.data.model_dump(mode="json", exclude={"root", "download"})
    if data.get("dataset") != "synthetic":
        data = {k: v for k, v in data.items() if not k.startswith("synthetic_")}
    objectives: dict[str, Any] = {"directions": s.directions()}
    if s.needs_latency:
        objectives["latency"] = s.latency.model_dump(mode="json")
    values = {
        "architecture": spec_part,
        "training": training_part(s),
        "data": data,
        "objectives": objectives,
        "constraints": s.constraints.model_dump(mode="json"),
        "seed": s.seed,
    }
    parts = {name: _hash(values[name]) for name in PARTS}
    return {"hash": _hash(parts), "parts": parts}


def training_part(s: Any) -> dict[str, Any]:
    """How trials are trained, or, in a one-shot search, how the supernet is (what scores
    them): the supernet's strategy, epochs and settings; not how subnets are scored."""
    part = {k: v for k, v in s.train.items() if k not in RUNTIME_TRAIN_KEYS}
    if s.supernet is not None:
        net = s.supernet
        train = {k: v for k, v in net.train.items() if k not in RUNTIME_TRAIN_KEYS}
        part["supernet"] = {"strategy": net.strategy, "epochs": net.epochs, "train": train}
        if net.strategy == "gdas":
            part["supernet"]["arch_lr"] = net.arch_lr
    return part


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words (``["the seed"]``)."""
    old, new = stored.get("parts") or {}, current.get("parts") or {}
    return [text for name, text in PARTS.items() if old.get(name) != new.get(name)]


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _changed(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """``the seed changed``, ``the data and the seed changed``."""
    items = differences(stored, current) or ["the space"]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"{listed} changed"


def _refuse(out: Path, what: str) -> SearchError:
    return SearchError(
        f"{out} holds {what}; use another --out, or --fresh to move it aside "
        f"(to {out}/{PREVIOUS}<time>/) and start over"
    )


# -- before a run -----------------------------------------------------------------------------


def check_existing(out: Path, space: SearchSpace, url: str, study_name: str) -> None:
    """Refuse (without writing) an OUT whose study is another one, or whose study database
    is empty or unreadable; an OUT without a study, or with this one, is fine."""
    run = _read_run(out)
    if run is not None:
        theirs = run.get("study_name")
        stored = run.get("fingerprint")
        if theirs is not None and theirs != study_name:
            where = f" ({run['space']})" if run.get("space") else ""
            raise _refuse(out, f"the study {theirs!r} of another space{where}")
        if isinstance(stored, dict) and stored.get("hash") != fingerprint(space)["hash"]:
            changed = _changed(stored, fingerprint(space))
            raise _refuse(out, f"the study {study_name!r} of another space ({changed})")
    db = study_file(url)
    if db is not None and db.exists():
        check_database(db, out, url)
        journal = url.startswith(JOURNAL) or db.suffix == JOURNAL_SUFFIX
        names = _study_names(db, out, journal) if is_inside(db, out) else []
        if names and study_name not in names:
            theirs = ", ".join(repr(n) for n in names)
            raise _refuse(out, f"the study {theirs} of another space, not {study_name!r}")


def _study_names(db: Path, out: Path, journal: bool) -> list[str]:
    """The studies in a SQLite or journal file, read without writing (none when it has no
    tables yet)."""
    if journal:
        import optuna

        try:
            return list(optuna.get_all_study_names(journal_storage(db)))
        except Exception as e:
            raise SearchError(
                f"{_shown(db, out)} is not a readable study journal ({e}); --fresh moves it "
                f"aside (to {out}/{PREVIOUS}<time>/) and starts a new study"
            ) from None
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT study_name FROM studies").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as e:
        text = str(e).lower()
        if "not a database" in text or "malformed" in text:
            raise SearchError(
                f"{_shown(db, out)} is not a readable study database ({e}); --fresh moves it "
                f"aside (to {out}/{PREVIOUS}<time>/) and starts a new study"
            ) from None
        return []  # no tables yet, locked, ...: opening the storage will tell
    return [str(r[0]) for r in rows]


def check_study(study: optuna.Study, space: SearchSpace, where: str) -> None:
    """Refuse a stored study of another space; give a study without a fingerprint (a new
    one, or one from before fingerprints) this space's."""
    current = fingerprint(space)
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        study.set_user_attr(FINGERPRINT_ATTR, current)
    elif stored.get("hash") != current["hash"]:
        raise SearchError(
            f"study {study.study_name!r} in {where} was run on another space "
            f"({_changed(stored, current)}); use another --out or study_name "
            "(--set search.study_name=NAME)"
        )


FILE_SCHEMES = ("sqlite:///", JOURNAL)  # storages that are one file on this machine
JOURNAL_SUFFIX = ".journal"


def study_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` or ``journal:///`` URL (None for servers and in-memory
    databases)."""
    scheme = file_scheme(url)
    if scheme is None:
        return None
    path = url[len(scheme) :].split("?")[0]
    return Path(path) if path and path != ":memory:" else None


def file_scheme(url: str) -> str | None:
    return next((s for s in FILE_SCHEMES if url.startswith(s)), None)


def check_database(db: Path, out: Path, url: str = "") -> None:
    """An existing SQLite file must be a database: an empty or foreign file is never
    silently replaced by a new study. (A journal file, named by a ``journal:///`` ``url`` or
    by its suffix, is checked by Optuna when read.)

    The file is read through SQLite, never ``open()``: closing any descriptor of a database
    file drops every POSIX lock this process holds on it (SQLite's "How To Corrupt", 2.2), so
    another process could take the database for unused, checkpoint and remove its write-ahead
    log under this process's open connections, which then read a stale or "malformed" file."""
    if not db.exists() or db.suffix == JOURNAL_SUFFIX or url.startswith(JOURNAL):
        return
    try:
        empty = db.stat().st_size == 0
    except OSError as e:
        raise OutputError(f"cannot read {_shown(db, out)}: {reason(e)}", e.errno) from None
    problem = "is empty (0 bytes), not a study database" if empty else _not_sqlite(db)
    if problem is None:
        return
    raise SearchError(
        f"{_shown(db, out)} {problem}; --fresh moves it aside (to {out}/{PREVIOUS}<time>/) "
        "and starts a new study"
    )


def _not_sqlite(db: Path) -> str | None:
    """Why ``db`` is not a SQLite database, or None (read by SQLite's own file layer)."""
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # cannot even be opened: Optuna's own error says why, located
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e) or "malformed" in str(e):
            return f"is not a readable SQLite database (SQLite: {e})"
    finally:
        connection.close()
    return None


def _shown(db: Path, out: Path) -> str:
    try:
        return str(out / db.resolve().relative_to(out.resolve()))
    except ValueError:
        return str(db)


def _read_run(out: Path) -> dict[str, Any] | None:
    path = out / RUN_FILE
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        why = reason(e) if isinstance(e, OSError) else "not valid JSON"
        raise _refuse(out, f"an unreadable {RUN_FILE} ({why})") from None
    if not isinstance(run, dict):
        raise _refuse(out, f"a {RUN_FILE} that is not a search's")
    return run


def move_aside(out: Path, url: str) -> Path | None:
    """``--fresh``: move everything in OUT (earlier ``previous-*`` folders excepted) to
    ``OUT/previous-<time>/``; returns that folder, or None when there was nothing to move.
    A study elsewhere (a database server) cannot be moved: refused."""
    check_fresh(out, url)
    if not out.is_dir():
        return None
    entries = sorted(p for p in out.iterdir() if not p.name.startswith(PREVIOUS))
    if not entries:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, n = out / f"{PREVIOUS}{stamp}", 1
    while dest.exists():
        dest, n = out / f"{PREVIOUS}{stamp}-{n}", n + 1
    try:
        dest.mkdir()
        for entry in entries:
            os.replace(entry, dest / entry.name)
    except OSError as e:
        raise OutputError(f"--fresh: cannot move {out} aside: {reason(e)}", e.errno) from None
    return dest


def check_fresh(out: Path, url: str) -> None:
    """``--fresh`` can move a study aside only when it is a file inside OUT."""
    db = study_file(url)
    if db is None or not is_inside(db, out):
        raise SearchError(
            f"--fresh moves the study in {out} aside, but this one lives in {public_url(url)}; "
            "start a new study there with another study name (--set search.study_name=NAME)"
        )


def is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


# -- paths in run.json ------------------------------------------------------------------------


def storage_in_file(out: Path, url: str) -> str:
    """The storage as ``run.json`` records it: a SQLite file inside OUT relative to OUT
    (``sqlite:///study.db``), anything else as given (without its password)."""
    db = study_file(url)
    if db is not None and is_inside(db, out):
        return f"{file_scheme(url)}{db.resolve().relative_to(out.resolve()).as_posix()}"
    return public_url(url)


def resolve_storage(out: Path, stored: str) -> str:
    """The URL of a storage ``run.json`` recorded, for the folder where it is now: relative
    SQLite paths are relative to OUT; an absolute one from before (the folder has moved
    since) is looked for in OUT under its name."""
    db = study_file(stored)
    scheme = file_scheme(stored)
    if db is None:
        return stored
    if not db.is_absolute():
        return f"{scheme}{(out / db).resolve()}"
    if not db.exists() and (out / db.name).is_file():
        return f"{scheme}{(out / db.name).resolve()}"
    return stored


# -- failures while running -------------------------------------------------------------------

_FIXES = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space",
    errno.EIO: "check the disk",
}

_SQLITE_REASONS = {
    "database or disk is full": errno.ENOSPC,
    "readonly database": errno.EROFS,
    "disk i/o error": errno.EIO,
}


def environment_failure(error: BaseException, out: Path, url: str) -> OutputError | None:
    """One line for ``error`` when it (or what caused it) is the machine's fault: a full disk,
    a read-only or unwritable folder, an I/O error, met while the study runs; it says that the
    finished trials are kept and how to resume. None for anything else."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    what = code = None
    while stack and what is None:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OutputError) and e.errno in REASONS:
            what, code = str(e), e.errno
        elif isinstance(e, OSError) and e.errno in REASONS:
            what, code = f"cannot write {e.filename or out}: {reason(e)}", e.errno
        elif isinstance(e, sqlite3.Error):
            text = str(e).lower()
            for pattern, found in _SQLITE_REASONS.items():
                if pattern in text:
                    db = study_file(url)
                    where = _shown(db, out) if db is not None else public_url(url)
                    what, code = f"cannot write the study {where}: {REASONS[found]}", found
                    break
        stack += [getattr(e, "orig", None), e.__context__, e.__cause__]
    if what is None:
        return None
    fix = _FIXES.get(code or 0, "make it writable")
    return OutputError(
        f"{what}; the finished trials are kept: {fix} and run the same command again to resume",
        code,
    )


@contextmanager
def environment_errors(out: Path, url: str) -> Iterator[None]:
    """:func:`environment_failure` around a running study; other errors pass unchanged."""
    try:
        yield
    except Exception as e:
        failure = environment_failure(e, out, url)
        if failure is None:
            raise
        raise failure from None
