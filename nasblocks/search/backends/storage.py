"""Where a study lives, and what happens to the trials of a process that died.

Storage: :func:`open_storage` opens any Optuna RDB URL so that it holds with several processes
on it (SQLite in WAL mode with a busy timeout; a server with a connect timeout and pre-ping;
the PostgreSQL driver that is installed) and, on request, with heartbeats. Messages and files
show the URL without its password (:func:`public_url`).

Dead processes: every trial records the process that runs it (``worker``: ``host:pid``). A
process found dead is handled one of three ways, all ending in :func:`fail_and_requeue` (the
trial FAIL with the reason, a new trial with the same parameters and ``retry_of``, once):

- :func:`recover`, at the start of a run on a study no other process uses: every RUNNING
  trial is dead;
- the supervisor of ``--workers N`` (:mod:`nasblocks.search.backends.workers`), when one of its
  worker processes exits abnormally;
- :func:`fail_stale` / :class:`RequeueStale`, on a storage shared between machines, when a
  trial's heartbeat stops.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError
from nasblocks.search.logs import quiet_optuna

MAX_RETRIES = 1  # a trial whose process died is re-run once; a second death is final
LEFT_RUNNING = "left RUNNING by a process that stopped"
DEFAULT_HEARTBEAT = 10  # seconds, on storages shared between machines
GRACE_BEATS = 3  # heartbeats missed before a trial counts as dead (a busy database is slow)


# -- storage ----------------------------------------------------------------------------------


def storage_url(out: Path, storage: str | None, table: bool = False) -> str:
    """The storage given, else the study file in OUT: ``study.db`` (SQLite), or for a table
    search ``study.journal`` (Optuna's JournalStorage: an append-only file, about 1 ms per
    trial written where SQLite takes 20; a lookup itself takes microseconds)."""
    if storage:
        return storage
    if table:
        return f"{JOURNAL}{(out / 'study.journal').resolve()}"
    return f"sqlite:///{(out / 'study.db').resolve()}"


JOURNAL = "journal:///"  # nasblocks' URL for an Optuna JournalStorage file


def is_local(url: str) -> bool:
    """A SQLite or journal file: only processes of this machine can use it."""
    return url.startswith(("sqlite:", JOURNAL))


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    """Optuna's JournalStorage on the file ``path`` (file locks: several processes may share
    it)."""
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def heartbeat_for(url: str, heartbeat: int | None) -> int | None:
    """Seconds between a running trial's heartbeats: on by default where other machines may
    share the study (a database server), off for SQLite unless asked for."""
    if heartbeat is not None and heartbeat < 1:
        raise SearchError(f"the heartbeat interval must be at least 1 second, got {heartbeat}")
    return heartbeat if heartbeat is not None or is_local(url) else DEFAULT_HEARTBEAT


def public_url(url: str) -> str:
    """``url`` without its password, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        # URL is a named tuple; URL.set(password=None) keeps the password
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except Exception:  # not a URL sqlalchemy can parse: hide whatever sits before an '@'
        return re.sub(r"//[^/@]*@", "//", url)


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url`` that holds with several processes on it.

    SQLite: write-ahead log (readers and the one writer do not block each other) and a 60 s
    busy timeout (a writer waits for the lock instead of failing with "database is locked").
    A server (PostgreSQL, MySQL): a connect timeout and pre-ping, so that an unreachable or
    restarted server is one clear error. ``heartbeat`` (seconds) turns on Optuna's heartbeats:
    a RUNNING trial whose heartbeat is older than :data:`GRACE_BEATS` intervals is failed by
    the next worker that looks, and re-queued (:class:`RequeueStale`).
    """
    shown = public_url(url)
    if url.startswith(JOURNAL):
        if heartbeat is not None:
            raise SearchError("heartbeats need a database storage, not a journal file")
        try:
            return journal_storage(Path(url[len(JOURNAL) :]))
        except Exception as e:
            raise SearchError(f"cannot open storage {shown!r}: {_one_line(e)}") from None
    url = with_driver(url)
    kwargs: dict[str, Any] = {}
    if heartbeat is not None:
        kwargs = {
            "heartbeat_interval": heartbeat,
            "grace_period": GRACE_BEATS * heartbeat,
            _STALE_CALLBACK_ARG: RequeueStale(heartbeat),
        }
    local = is_local(url)
    engine: dict[str, Any] = (
        {"connect_args": {"timeout": 60}}
        if local
        else {"pool_pre_ping": True, "connect_args": _connect_timeout(url)}
    )
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
            if local:
                _use_wal(storage)
            return storage
        except (ValueError, ImportError, RuntimeError) as e:
            raise SearchError(f"cannot open storage {shown!r}: {_one_line(e)}") from None
        except Exception as e:  # sqlalchemy errors: unreachable server, bad URL
            import sqlalchemy.exc

            # Two processes creating the tables of a new database at once: one loses the race.
            racing = isinstance(e, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError)
            if racing and attempt < 2:
                time.sleep(0.5 + attempt)
                attempt += 1
                continue
            raise SearchError(
                f"cannot open storage {shown!r}: {type(e).__name__}: {_one_line(e)}"
            ) from None


def check_url(url: str) -> None:
    """Refuse a storage URL that names no database SQLAlchemy knows, before anything is
    created (opening the storage would create a SQLite file)."""
    if url.startswith(JOURNAL):
        if not url[len(JOURNAL) :]:
            raise SearchError(f"cannot open storage {url!r}: the journal URL names no file")
        return
    try:
        from sqlalchemy.engine import make_url

        make_url(with_driver(url)).get_dialect()
    except Exception as e:
        raise SearchError(
            f"cannot open storage {public_url(url)!r}: {type(e).__name__}: {_one_line(e)}"
        ) from None


def with_driver(url: str) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed (SQLAlchemy 2.1 means
    psycopg 3 by it, many installs have psycopg2); other URLs unchanged."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{module}://{rest}"
    raise SearchError(
        "a PostgreSQL storage needs a driver: pip install 'nasblocks[postgres]' (psycopg2-binary)"
    )


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_timeout": 10} if url.startswith("postgresql") else {}


def _use_wal(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead log mode (kept in the file, so every later connection uses it too), and
    ``synchronous=NORMAL`` on every connection: in WAL mode a commit then waits for no disk
    flush (the WAL is flushed at checkpoints). SQLite's documentation calls this safe from
    corruption; a killed process loses nothing it committed, a power cut may lose the last
    commits. A trial makes a dozen commits, each 1-2 ms faster."""
    import sqlalchemy

    def normal(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(storage.engine, "connect", normal)
    storage.engine.dispose()  # connections opened so far get it too, when reopened
    with storage.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = text.split(" (Background on this error")[0]  # sqlalchemy's link
    return text[:300]


# -- dead processes ---------------------------------------------------------------------------


def recover(study: optuna.Study, max_retries: int = MAX_RETRIES) -> list[int]:
    """Fail the trials a dead process left RUNNING (and the interrupted ones), re-queue them.

    Returns the numbers re-queued. Call only when no other worker is running on the study.
    """
    queued = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if fail_and_requeue(study, t, LEFT_RUNNING, max_retries)
    ]
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:  # interrupted (Ctrl-C), or failed here but not re-queued (killed meanwhile)
        if t.state != TrialState.FAIL or t.number in retried:
            continue
        if died(t) and requeue(study, t, LEFT_RUNNING, max_retries):
            queued.append(t.number)
    return queued


def died(trial: FrozenTrial) -> bool:
    """Whether a FAIL trial ended because its process stopped (not by its own error): it was
    interrupted, or failed from outside (Optuna records no ``fail_reason`` then), or (studies
    written before nasblocks 0.3) carries the old ``error`` of a trial left running."""
    a = trial.user_attrs
    if a.get("interrupted") or a.get("error") == LEFT_RUNNING:
        return True
    return "error" not in a and "fail_reason" not in trial.system_attrs


def fail_and_requeue(
    study: optuna.Study, trial: FrozenTrial, reason: str, max_retries: int = MAX_RETRIES
) -> bool:
    """Fail a RUNNING trial whose process is gone and re-queue it; True if re-queued.

    Safe with several processes doing it at once: only the one whose state change lands
    re-queues (the storage refuses to update a finished trial, ``Study.tell`` says so).
    """
    try:
        with quiet_optuna():
            study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        return False  # finished meanwhile (by its process, or by another process failing it)
    return requeue(study, trial, reason, max_retries)


def requeue(
    study: optuna.Study, trial: FrozenTrial, reason: str, max_retries: int = MAX_RETRIES
) -> bool:
    """Queue a new trial with ``trial``'s parameters (``retry_of``; ``retry_reason``: why the
    first one ended), unless it is a retry already retried ``max_retries`` times."""
    depth = trial.user_attrs.get("retry_depth", 0)
    if depth >= max_retries:
        return False
    attrs = {"retry_of": trial.number, "retry_depth": depth + 1, "retry_reason": reason}
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return True


def stale_reason(heartbeat: int) -> str:
    return f"no heartbeat for {GRACE_BEATS * heartbeat} s: its worker stopped"


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials whose heartbeat stopped (their worker died): Optuna's own
    ``fail_stale_trials``, which calls :class:`RequeueStale` for each; Optuna does the same
    before each trial it starts."""
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # since 2.9
        optuna.storages.fail_stale_trials(study)


def worker_id(pid: int | None = None) -> str:
    """``host:pid``: which process runs a trial (its ``worker`` user attribute)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


class RequeueStale:
    """Optuna's heartbeat-stale callback, with nasblocks' retry convention: a new trial with
    the same parameters, ``retry_of`` and the reason.

    Not Optuna's ``RetryFailedTrialCallback``: it copies the failed trial's user attributes
    (its ``worker``, ``spec``, an ``error``) onto the retry, which then reads as the dead
    trial until it overwrites them; a retry here starts clean."""

    def __init__(self, heartbeat: int) -> None:
        self.heartbeat = heartbeat

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        requeue(study, trial, stale_reason(self.heartbeat))


# Optuna 4.9 renamed ``failed_trial_callback`` (deprecated) to ``heartbeat_stale_trial_callback``.
_STALE_CALLBACK_ARG = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback"
    in inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    else "failed_trial_callback"
)
