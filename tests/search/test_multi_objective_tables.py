"""Hardware-aware multi-objective table search: objectives joined from other tables, the
Pareto front in pareto.csv, its hypervolume in the report."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nasblocks.errors import SpecError
from nasblocks.search import search
from nasblocks.search.evaluators import table as tables
from nasblocks.search.outputs.pareto import hypervolume

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "nas_bench_201.yaml"
LATENCY = ROOT / "search_spaces" / "tables" / "nas_bench_201_latency.csv"
MO = {
    "search.objectives": [
        "val_acc",
        {"metric": "pixel3_ms", "table": "tables/nas_bench_201_latency.csv"},
    ],
    "search.sampler": "nsga2",
    "search.budget.trials": 60,
}


def test_hypervolume_is_exact_in_two_and_three_objectives():
    # minimise both: points (1, 3), (2, 2), (3, 1) under reference (4, 4): 3 + 2 + 1 = 6
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4), ["minimize"] * 2) == 6.0
    # a dominated point and a point beyond the reference add nothing
    assert hypervolume([(1, 3), (2, 2), (3, 1), (3, 3), (5, 0)], (4, 4), ["minimize"] * 2) == 6
    # maximise accuracy, minimise latency: (90, 2) and (80, 1) from (70, 3): 20 + 10 = 30
    assert hypervolume([(90, 2), (80, 1)], (70, 3), ["maximize", "minimize"]) == 30.0
    # one point: a box; two nested boxes in 3-D: the larger
    assert hypervolume([(1, 1, 1)], (2, 3, 4), ["minimize"] * 3) == 6.0
    assert hypervolume([(0, 0, 0), (1, 1, 1)], (2, 2, 2), ["minimize"] * 3) == 8.0
    # two boxes in 3-D overlapping in a unit cube: 2*1*1 + 1*2*1 - 1 = 3 from the origin corner
    assert hypervolume([(0, 1, 1), (1, 0, 1)], (2, 2, 2), ["minimize"] * 3) == 3.0


def test_latency_from_another_table_is_an_objective_and_the_front_is_written(tmp_path):
    outcome = search(SPACE, overrides=MO, out=tmp_path, progress=False)
    assert outcome.finished == 60
    latency = tables.load_table(LATENCY, "pixel3_ms", "arch")
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    assert len(rows) == len(list((tmp_path / "pareto").glob("*.yaml"))) >= 2
    trials = {int(r["number"]): r for r in csv.DictReader((tmp_path / "trials.csv").open())}
    for row in rows:  # the joined value, the searched value and the reported one
        key = tables.make_key(SPACE_KEY, {e: row[e] for e in EDGES})
        assert float(row["pixel3_ms"]) == latency.score(key)
        assert float(row["test_acc"]) == float(trials[int(row["number"])]["reported:test_acc"])
        assert row["spec"] == f"pareto/trial_{row['number']}.yaml"
    # nothing on the front is dominated by another front member
    points = [(float(r["val_acc"]), float(r["pixel3_ms"])) for r in rows]
    for a in points:
        assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] for b in points)
    report = (tmp_path / "report.md").read_text()
    assert "Hypervolume of the front: **" in report
    assert "the median of each objective over the 60 evaluated trials" in report


def test_a_given_reference_point_is_used(tmp_path):
    over = {**MO, "search.reference_point": {"val_acc": 80.0, "pixel3_ms": 30.0}}
    search(SPACE, overrides=over, out=tmp_path, progress=False)
    report = (tmp_path / "report.md").read_text()
    assert "(val_acc 80, pixel3_ms 30): given (search.reference_point)" in report


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        (
            ["val_acc", {"metric": "pixel4_ms", "table": "tables/nas_bench_201_latency.csv"}],
            "search.objectives[1]: ",
        ),
        (["val_acc", "params"], "table evaluation builds no network, so it has no params"),
        (["val_acc"], "reference_point gives ['val_acc', 'x']; it needs one value for each"),
    ],
)
def test_table_objective_mistakes_are_one_located_line(tmp_path, objectives, message):
    with pytest.raises(SpecError) as e:
        over = {"search.objectives": objectives, "search.sampler": "nsga2"}
        if objectives == ["val_acc"]:
            over["search.reference_point"] = {"val_acc": 90.0, "x": 1.0}
        search(SPACE, overrides=over, out=tmp_path, progress=False)
    assert str(e.value).startswith(str(SPACE)) and message in str(e.value)
    assert not (tmp_path / "run.json").exists()


EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
SPACE_KEY = "|{edge_1_0}~0|+|{edge_2_0}~0|{edge_2_1}~1|+|{edge_3_0}~0|{edge_3_1}~1|{edge_3_2}~2|"
