"""The Optuna engine: infeasible samples, constraints, dedup, failures, samplers, pruners."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState

from nasblocks.errors import SearchError, SpecError
from nasblocks.search.engine import search
from nasblocks.search.outputs.results import load_study
from nasblocks.space import load_space

GROUPS = """
name: groups
stem: {out_channels: 8, kernel_size: 3, stride: 1, pool: none}
stages:
  block: basic
  layers: [1]
  widths: [{choice: [8, 16]}]
  groups: {choice: [1, 2]}
search:
  data: {dataset: synthetic, synthetic_size: 120, synthetic_shape: [1, 8, 8],
         synthetic_classes: 4}
  train: {batch_size: 32, epochs: 2}
  budget: {trials: 8}
  sampler: random
  pruner: none
"""


def run(path, tmp_path, **overrides):
    space = load_space(path, overrides)
    return search(space, out=tmp_path / "out", progress=False)


def trials(tmp_path):
    return load_study(tmp_path / "out").get_trials(deepcopy=False)


def test_infeasible_samples_are_pruned_with_a_reason_and_never_trained(
    write_space, tmp_path, fake_trainer
):
    trainer = fake_trainer()
    run(write_space(GROUPS), tmp_path)
    all_trials = trials(tmp_path)
    bad = [t for t in all_trials if t.params["stages.groups"] == 2]
    good = [t for t in all_trials if t.params["stages.groups"] == 1]
    # the budget counts evaluated architectures: infeasible samples are recorded besides
    assert bad and len(good) == 8 and len(all_trials) == len(bad) + 8
    for t in bad:
        assert t.state == TrialState.PRUNED
        assert "basic block supports only groups 1" in t.user_attrs["infeasible"]
        assert t.constraints == {"valid": 1.0}  # Optuna sees it infeasible
        assert "val_acc" not in t.user_attrs and t.intermediate_values == {}
    assert all(s.doc.stages.groups == 1 for s in trainer.calls)
    # two distinct feasible architectures: each trained once, the rest reused
    assert len(trainer.calls) == len({t.user_attrs["spec_hash"] for t in good}) == 2


def test_duplicates_reuse_the_stored_result(write_space, tmp_path, fake_trainer):
    trainer = fake_trainer()
    run(write_space(GROUPS), tmp_path, **{"stages.groups": 1})
    done = trials(tmp_path)
    assert all(t.state == TrialState.COMPLETE for t in done)
    originals = [t for t in done if "duplicate_of" not in t.user_attrs]
    assert len(originals) == len(trainer.calls) == 2
    by_number = {t.number: t for t in done}
    for t in done:
        if "duplicate_of" in t.user_attrs:
            source = by_number[t.user_attrs["duplicate_of"]]
            assert "duplicate_of" not in source.user_attrs
            assert t.user_attrs["spec_hash"] == source.user_attrs["spec_hash"]
            assert t.value == source.value


def test_constraints_are_checked_before_training(write_space, tmp_path, fake_trainer):
    trainer = fake_trainer()
    run(
        write_space(GROUPS),
        tmp_path,
        **{"stages.groups": 1, "search.constraints.max_params": 2000},
    )
    done = trials(tmp_path)
    big = [t for t in done if t.params["stages.widths[0]"] == 16]
    small = [t for t in done if t.params["stages.widths[0]"] == 8]
    assert big and small
    for t in big:
        assert t.state == TrialState.PRUNED and "max_params 2,000" in t.user_attrs["infeasible"]
        assert t.constraints["max_params"] > 0
    assert all(t.user_attrs["n_params"] <= 2000 for t in small)
    assert [s.doc.stages.widths for s in trainer.calls] == [[8]]


def test_a_trial_that_raises_or_diverges_is_recorded_and_the_study_goes_on(
    write_space, tmp_path, fake_trainer
):
    from nasblocks.train import DivergedError, TrainOutOfMemoryError

    fake_trainer(
        fail={
            0: RuntimeError("boom\nsecond line"),
            1: DivergedError(2, float("nan")),
            2: TrainOutOfMemoryError("out of memory training on cpu"),
        }
    )
    run(
        write_space(GROUPS),
        tmp_path,
        **{
            "stages.groups": 1,
            "search.budget.trials": 3,
            "search.train.lr": {"float": [0.01, 0.1]},
        },
    )
    done = trials(tmp_path)
    failed = [t for t in done if t.state == TrialState.FAIL]
    assert [t.user_attrs["error"] for t in failed] == [
        "RuntimeError: boom",
        "out of memory: out of memory training on cpu",
    ]
    assert "Traceback" in failed[0].user_attrs["traceback"]
    diverged = [t for t in done if "diverged" in t.user_attrs]
    assert len(diverged) == 1 and diverged[0].state == TrialState.PRUNED
    finished = [t for t in done if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3  # the failure did not count against the budget


def test_repeated_failures_stop_the_search(write_space, tmp_path, fake_trainer):
    fake_trainer(fail={i: ValueError(f"bad {i}") for i in range(10)})
    with pytest.raises(
        SearchError, match="5 trials in a row failed; the last one: ValueError: bad 4"
    ):
        run(
            write_space(GROUPS),
            tmp_path,
            **{"stages.groups": 1, "search.train.lr": {"float": [0.01, 0.1]}},
        )
    assert (tmp_path / "out" / "trials.csv").is_file()  # what ran is still written


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "grid", "evolution"])
def test_every_sampler_runs_a_tiny_budget(write_space, tmp_path, fake_trainer, sampler):
    fake_trainer()
    settings = {
        "search.sampler": {"name": sampler, "population_size": 2}
        if sampler in ("nsga2", "evolution")
        else sampler,
        "search.budget.trials": 5,
        "stages.groups": 1,
        "search.train.lr": {"choice": [0.05, 0.1, 0.2]},
    }
    if sampler == "tpe":
        settings["search.sampler"] = {"name": "tpe", "n_startup_trials": 2}
    outcome = run(write_space(GROUPS), tmp_path, **settings)
    done = trials(tmp_path)
    kinds = {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "nsga2": "NSGAIISampler",
        "grid": "GridSampler",
        "evolution": "RegularizedEvolutionSampler",
    }
    assert type(load_study_sampler(tmp_path, sampler)).__name__ == kinds[sampler]
    assert outcome.finished == 5 == len(done)
    assert outcome.best_trial is not None
    if sampler == "evolution":  # population of 2 full after 2 trials: the rest are children
        assert any("evolution:parent" in t.system_attrs for t in done)


def load_study_sampler(tmp_path, name):
    from nasblocks.search.samplers import make_sampler

    space = load_space(tmp_path / "space.yaml", {"search.sampler": name})
    return make_sampler(space, 0)


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband", "none"])
def test_pruners_are_fed_per_epoch_validation_accuracy(
    write_space, tmp_path, fake_trainer, pruner
):
    # every trial is worse than the ones before: once started, the pruners must cut
    order = itertools.count()
    fake_trainer(accuracy=lambda spec, config: 0.9 - 0.1 * next(order))
    run(
        write_space(GROUPS),
        tmp_path,
        **{
            "stages.groups": 1,
            "search.budget.trials": 6,
            "search.train.epochs": 4,
            "search.train.lr": {"float": [0.01, 0.1]},
            "search.pruner": {"name": pruner, "n_startup_trials": 2},
        },
    )
    done = trials(tmp_path)
    trained = [t for t in done if "duplicate_of" not in t.user_attrs]
    assert all(t.intermediate_values for t in trained)
    for t in trained:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    if pruner == "none":
        assert not pruned
    else:
        assert pruned and all(t.user_attrs["pruned_at"] < 4 for t in pruned)


def test_multi_objective_gives_a_pareto_front(write_space, tmp_path, fake_trainer):
    fake_trainer(accuracy=lambda spec, config: 0.5 + spec.doc.stages.widths[0] / 100)
    out = run(
        write_space(GROUPS),
        tmp_path,
        **{
            "stages.groups": 1,
            "search.objectives": ["val_acc", "params"],
            "search.budget.trials": 4,
            "search.pruner": "median",
        },
    )
    study = load_study(tmp_path / "out")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = sorted((tmp_path / "out" / "pareto").glob("*.yaml"))
    assert len(front) == 2  # wide (accurate) and narrow (small) are both optimal
    assert (tmp_path / "out" / "pareto.png").is_file()
    assert out.best_values[0] == pytest.approx(0.66)  # the most accurate of the front


def test_a_space_with_no_valid_sample_is_a_located_error(write_space, tmp_path):
    path = write_space(GROUPS.replace("widths: [{choice: [8, 16]}]", "widths: [8, 16]"))
    with pytest.raises(SpecError) as e:
        run(path, tmp_path)
    assert e.value.line == 6 and "widths has 2 entries for 1 stages" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_resuming_with_other_objectives_is_refused(write_space, tmp_path, fake_trainer):
    fake_trainer()
    path = write_space(GROUPS)
    run(path, tmp_path, **{"search.budget.trials": 1})
    with pytest.raises(SearchError, match="use another --out"):
        run(path, tmp_path, **{"search.objectives": ["val_acc", "flops"]})


def test_optuna_storage_is_plain(write_space, tmp_path, fake_trainer):
    """What optuna-dashboard reads: a normal RDB storage with the study in it."""
    fake_trainer()
    run(write_space(GROUPS), tmp_path, **{"search.budget.trials": 2})
    url = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    summaries = optuna.get_all_study_summaries(storage=url)
    assert [s.study_name for s in summaries] == ["space"]
    study = optuna.load_study(study_name="space", storage=url)
    evaluated = [t for t in study.trials if "infeasible" not in t.user_attrs]
    assert summaries[0].n_trials == len(study.trials) and len(evaluated) == 2


def test_optuna_dashboard_serves_the_study(write_space, tmp_path, fake_trainer):
    import io
    import json
    import sys

    dashboard = pytest.importorskip("optuna_dashboard")
    fake_trainer()
    run(write_space(GROUPS), tmp_path, **{"search.budget.trials": 2})
    app = dashboard.wsgi(f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    status = {}

    def start(code, headers, exc_info=None):
        status["code"] = code

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/studies/1",
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    body = json.loads(b"".join(app(environ, start)))
    assert status["code"] == "200 OK"
    stored = optuna.load_study(
        study_name="space", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    )
    assert len(body["trials"]) == len(stored.trials) >= 2
    keys = {a["key"] for t in body["trials"] for a in t["user_attrs"]}
    assert {"spec_hash", "n_params", "flops"} <= keys
