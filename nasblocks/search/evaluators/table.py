"""Table evaluation: a trial's score looked up in a CSV of trained architectures.

Tabular NAS benchmarks (NAS-Bench-201 / NATS-Bench, NAS-Bench-101, HW-NAS-Bench ...) publish
one row per architecture of their space. A space that says::

    search:
      evaluate:
        table: tables/nas_bench_201_cifar10.csv     # relative to the space file
        metric: test_acc                            # the column searched (maximised)
        key: "|{edge_1_0}~0|+|{edge_2_0}~0|{edge_2_1}~1|+|..."
        key_column: arch                            # the column holding the key

is searched without training: each trial builds its key by putting the sampled values
(``{name}`` = the value of the node named ``name``: a choice's label, a number) into ``key``
and looks the row up. The key template is plain text substitution, never evaluated.
An architecture missing from the table is an error that stops the search: the space and
the table disagree, and no score would be honest.

Real evaluations are noisy: a table with a ``seed`` column (``seed_column``) may hold one row
per training run of an architecture, and a query reads one of them, chosen from the search
seed and the key (:func:`run_index`): asking again gives the same run, as the same training
would, and another ``--seed`` may give another. What is *reported* for the best is apart
from what the sampler sees (``report: {table, metric}``, joined on the same key, the mean
over its runs): NAS-Bench-201's protocol searches validation accuracy and reports test
accuracy, so that no number selected on the test set is published.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasblocks.errors import SearchError, SpecError

FIELD = re.compile(r"\{([^{}]+)\}")
_CACHE: dict[tuple[str, float, str, str, str], Table] = {}


class TableError(SearchError):
    """The table cannot answer (missing file, column or architecture)."""


@dataclass(frozen=True)
class Table:
    """One metric of a CSV, by key: one value per training run (ordered by seed)."""

    path: Path
    metric: str
    key_column: str
    runs: Mapping[str, tuple[float, ...]]

    def __len__(self) -> int:
        return len(self.runs)

    def values(self, key: str) -> tuple[float, ...]:
        try:
            return self.runs[key]
        except KeyError:
            raise TableError(
                f"architecture {key!r} is not in {self.path} "
                f"(its {len(self):,} rows are keyed by {self.key_column!r}); "
                "the space's choices or search.evaluate.key do not match the table"
            ) from None

    def score(self, key: str, seed: int = 0) -> float:
        """One run's value: the run :func:`run_index` picks for ``seed`` and ``key``."""
        runs = self.values(key)
        return runs[run_index(key, seed, len(runs))]

    def mean(self, key: str) -> float:
        runs = self.values(key)
        return sum(runs) / len(runs)

    def best(self) -> float:
        """The highest mean over runs."""
        return max(sum(r) / len(r) for r in self.runs.values())

    @property
    def several_runs(self) -> bool:
        return any(len(r) > 1 for r in self.runs.values())


def run_index(key: str, seed: int, runs: int) -> int:
    """Which of an architecture's ``runs`` a search with ``seed`` reads: a hash of both (the
    same in every process and Python version), so a query asked again reads the same run."""
    if runs <= 1:
        return 0
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % runs


def resolve_table_path(table: str, space_file: str | None) -> Path:
    """``table`` relative to the space file's folder, else to the working directory."""
    path = Path(table).expanduser()
    if not path.is_absolute() and space_file is not None:
        beside = Path(space_file).parent / path
        if beside.is_file() or not path.is_file():
            return beside
    return path


def load_table(path: Path, metric: str, key_column: str, seed_column: str = "seed") -> Table:
    """Read (once per process and file version) ``metric`` by ``key_column``; where the
    table has ``seed_column``, an architecture may have a row per run (ordered by seed)."""
    try:
        stamp = path.stat().st_mtime
    except OSError as e:
        raise TableError(f"cannot read the table {path}: {e.strerror or e}") from None
    cache_key = (str(path.resolve()), stamp, metric, key_column, seed_column)
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    found: dict[str, dict[str, float]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            for name, what in ((key_column, "key_column"), (metric, "metric")):
                if name not in columns:
                    raise TableError(
                        f"search.evaluate.{what}: {path} has no column {name!r}; "
                        f"its columns: {', '.join(columns) or 'none'}"
                    )
            seeded = seed_column in columns
            for line, row in enumerate(reader, start=2):
                key, text = row[key_column], row[metric]
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    raise TableError(
                        f"{path}:{line}: {metric} is {text!r}, not a number"
                    ) from None
                if not math.isfinite(value):
                    raise TableError(f"{path}:{line}: {metric} is {text!r}, not a finite number")
                run = row[seed_column] if seeded else ""
                runs = found.setdefault(key, {})
                if run in runs:
                    twice = f"the key {key!r}" + (f" with {seed_column} {run!r}" if seeded else "")
                    raise TableError(f"{path}:{line}: {twice} appears twice")
                runs[run] = value
    except UnicodeDecodeError:
        raise TableError(f"{path} is not a UTF-8 CSV file") from None
    except OSError as e:
        raise TableError(f"cannot read the table {path}: {e.strerror or e}") from None
    if not found:
        raise TableError(f"the table {path} has no rows")
    ordered = {
        key: tuple(runs[r] for r in sorted(runs, key=_seed_order)) for key, runs in found.items()
    }
    table = Table(path, metric, key_column, ordered)
    _CACHE[cache_key] = table
    return table


def load_joined(evaluate: Any, metric: str, table: str | None, space_file: str | None) -> Table:
    """``metric`` of ``table`` (default: the searched one) by ``search.evaluate``'s key and
    seed columns: the searched table, the reported one, an objective's."""
    path = resolve_table_path(table or evaluate.table, space_file)
    return load_table(path, metric, evaluate.key_column, evaluate.seed_column)


def _seed_order(seed: str) -> tuple[int, float | str]:
    """Seeds in numeric order where they are numbers (``10`` after ``9``)."""
    try:
        return (0, float(seed))
    except ValueError:
        return (1, seed)


def key_fields(template: str) -> list[str]:
    return FIELD.findall(template)


def check_key(template: str, names: Sequence[str]) -> None:
    """Every ``{field}`` of the key names a node of the space; a SpecError otherwise."""
    from nasblocks.registry import suggest

    where = ("search", "evaluate", "key")
    fields = key_fields(template)
    if not fields:
        raise SpecError('the key names no {node}; e.g. "{edge_1_0}-{edge_2_0}"', where)
    for name in fields:
        if name not in names:
            raise SpecError(
                f"the key uses {{{name}}}, which is no node of the space{suggest(name, names)}",
                where,
            )


def make_key(template: str, params: Mapping[str, Any]) -> str:
    """The key of one sample: each ``{name}`` replaced by the sampled value, as text."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:  # a node on a branch this sample did not take
            raise TableError(
                f"search.evaluate.key uses {{{name}}}, which this sample did not draw "
                "(it sits inside a choice that was not taken)"
            )
        return _text(params[name])

    return FIELD.sub(value, template)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
