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
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasblocks.errors import SearchError, SpecError

FIELD = re.compile(r"\{([^{}]+)\}")
_CACHE: dict[tuple[str, float, str, str], Table] = {}


class TableError(SearchError):
    """The table cannot answer (missing file, column or architecture)."""


@dataclass(frozen=True)
class Table:
    """One metric of a CSV, by key."""

    path: Path
    metric: str
    key_column: str
    scores: Mapping[str, float]

    def __len__(self) -> int:
        return len(self.scores)

    def score(self, key: str) -> float:
        try:
            return self.scores[key]
        except KeyError:
            raise TableError(
                f"architecture {key!r} is not in {self.path} "
                f"(its {len(self):,} rows are keyed by {self.key_column!r}); "
                "the space's choices or search.evaluate.key do not match the table"
            ) from None

    def best(self) -> float:
        return max(self.scores.values())


def resolve_table_path(table: str, space_file: str | None) -> Path:
    """``table`` relative to the space file's folder, else to the working directory."""
    path = Path(table).expanduser()
    if not path.is_absolute() and space_file is not None:
        beside = Path(space_file).parent / path
        if beside.is_file() or not path.is_file():
            return beside
    return path


def load_table(path: Path, metric: str, key_column: str) -> Table:
    """Read (once per process and file version) ``metric`` by ``key_column``."""
    try:
        stamp = path.stat().st_mtime
    except OSError as e:
        raise TableError(f"cannot read the table {path}: {e.strerror or e}") from None
    cache_key = (str(path.resolve()), stamp, metric, key_column)
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    scores: dict[str, float] = {}
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
                if key in scores:
                    raise TableError(f"{path}:{line}: the key {key!r} appears twice")
                scores[key] = value
    except UnicodeDecodeError:
        raise TableError(f"{path} is not a UTF-8 CSV file") from None
    except OSError as e:
        raise TableError(f"cannot read the table {path}: {e.strerror or e}") from None
    if not scores:
        raise TableError(f"the table {path} has no rows")
    table = Table(path, metric, key_column, scores)
    _CACHE[cache_key] = table
    return table


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
