"""The Pareto front of a multi-objective search: ``pareto.csv`` and its hypervolume.

The hypervolume is the volume of objective space the front dominates, bounded by a reference
point (Zitzler & Thiele 1998): one number that grows when the front moves out or fills in,
the measure multi-objective NAS reports. The reference point is the user's
(``search.reference_point``) or, by default, the median of each objective over the trials the
search evaluated, so it needs no knowledge of the space and the value is comparable between
runs of one space. Exact, by slicing along the last objective (fine for the fronts of a few
hundred points in two or three objectives a search returns).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from nasblocks.files import write_csv


def hypervolume(
    points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]
) -> float:
    """The hypervolume ``points`` dominate up to ``reference`` (each objective maximised or
    minimised as ``directions`` say; points not better than the reference in every
    objective add nothing)."""
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    ref = [r * s for r, s in zip(reference, sign, strict=True)]
    pts = [[v * s for v, s in zip(p, sign, strict=True)] for p in points]
    return _volume([p for p in pts if all(v < r for v, r in zip(p, ref, strict=True))], ref)


def _volume(points: list[list[float]], ref: list[float]) -> float:
    """Minimisation; every point strictly below ``ref``."""
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    points = sorted(points, key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(points):
        upper = points[i + 1][-1] if i + 1 < len(points) else ref[-1]
        if upper > p[-1]:
            total += (upper - p[-1]) * _volume([q[:-1] for q in points[: i + 1]], ref[:-1])
    return total


def reference_point(
    trials: Sequence[FrozenTrial], names: Sequence[str], given: Mapping[str, float] | None
) -> tuple[list[float], str]:
    """The reference point and how it was chosen (for the report)."""
    if given:  # the settings checked it names every objective
        return [float(given[n]) for n in names], "given (search.reference_point)"
    values = [t.values for t in trials if t.values is not None]
    point = [statistics.median(v[i] for v in values) for i in range(len(names))]
    return point, f"the median of each objective over the {len(values)} evaluated trials"


def front_rows(front: Sequence[FrozenTrial], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per front architecture: its objectives, reported metric and choices."""
    rows = []
    for t in sorted(front, key=lambda t: t.number):
        row: dict[str, Any] = {"number": t.number}
        row.update({n: v for n, v in zip(names, t.values or [], strict=False)})
        a = t.user_attrs
        if a.get("report_metric") is not None and a["report_metric"] not in row:
            row[a["report_metric"]] = a.get("report_value")
        if a.get("n_params") is not None and "params" not in row:
            row["n_params"] = a["n_params"]
        row.update({k: v for k, v in t.params.items() if k not in row})
        row["spec"] = f"pareto/trial_{t.number}.yaml"
        rows.append(row)
    return rows


def write_pareto_csv(front: Sequence[FrozenTrial], names: Sequence[str], path: Path) -> None:
    write_csv(front_rows(front, names), path)
