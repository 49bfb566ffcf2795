"""Local search: random starts, one-move neighbours, first improvement, restarts, no repeats."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from nasblocks.search.samplers.local_search import CENTER_KEY, RUN_KEY, LocalSearchSampler
from nasblocks.search.samplers.neighbourhood import PLAN_KEY, neighbour_values

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHOICES = ("a", "b", "c", "d")
NAMES = ("p", "q", "r", "s")
# a separable table: every edge has one best choice, its own
PERMS = [(0, 3, 1, 2), (2, 0, 3, 1), (1, 2, 0, 3), (3, 1, 2, 0)]
SCORES = {n: dict(zip(CHOICES, perm, strict=True)) for n, perm in zip(NAMES, PERMS, strict=True)}


def separable(trial: optuna.Trial) -> float:
    return float(sum(SCORES[n][trial.suggest_categorical(n, CHOICES)] for n in NAMES))


def cell(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def study_of(sampler, storage=None, name=None, direction="maximize"):
    return optuna.create_study(
        direction=direction,
        sampler=sampler,
        storage=storage,
        study_name=name,
        load_if_exists=name is not None,
    )


@pytest.mark.parametrize("seed", range(5))
def test_finds_the_optimum_of_a_separable_table_quickly(seed):
    # 256 cells; a climb needs at most 4 improving moves of at most 12 neighbours each
    study = study_of(LocalSearchSampler(n_startup_trials=3, seed=seed))
    study.optimize(separable, n_trials=60)
    assert study.best_value == 12.0
    assert len({cell(t) for t in study.trials}) == 60


def test_moves_are_one_parameter_changes_of_the_best_so_far_of_the_run():
    study = study_of(LocalSearchSampler(n_startup_trials=4, seed=1))
    study.optimize(separable, n_trials=30)
    by_number = {t.number: t for t in study.trials}
    for t in study.trials[4:]:
        if CENTER_KEY not in t.system_attrs:
            continue  # a restart
        center = by_number[t.system_attrs[CENTER_KEY]]
        assert sum(t.params[n] != center.params[n] for n in NAMES) == 1
        earlier = [
            u
            for u in study.trials[: t.number]
            if u.system_attrs[RUN_KEY] == t.system_attrs[RUN_KEY]
        ]
        assert center.value >= max(u.value for u in earlier)  # first improvement


def test_never_repeats_a_cell_while_unvisited_ones_exist():
    # 27 cells: 27 trials visit every one, across climbs and restarts
    def objective(trial):
        return float(sum(ord(trial.suggest_categorical(n, ["x", "y", "z"])) % 7 for n in "abc"))

    study = study_of(LocalSearchSampler(n_startup_trials=2, seed=0))
    study.optimize(objective, n_trials=27)
    assert len({cell(t) for t in study.trials}) == 27


def test_restarts_from_a_new_random_cell_at_a_local_optimum():
    def objective(trial):
        trial.suggest_categorical("a", ["x", "y", "z"])
        trial.suggest_categorical("b", ["x", "y", "z"])
        return 100.0 if trial.number == 0 else 0.0  # trial 0 is a local optimum

    study = study_of(LocalSearchSampler(n_startup_trials=1, seed=3))
    study.optimize(objective, n_trials=6)
    start, *nbrs, restart = study.trials
    assert all(t.system_attrs[CENTER_KEY] == 0 for t in nbrs)
    assert sorted(map(cell, nbrs)) == sorted(
        tuple(sorted({**start.params, k: v}.items()))
        for k in "ab"
        for v in "xyz"
        if v != start.params[k]
    )
    assert restart.system_attrs[RUN_KEY] == 1 and CENTER_KEY not in restart.system_attrs
    assert cell(restart) not in {cell(t) for t in study.trials[:5]}


def test_a_perturbed_restart_starts_two_moves_from_the_best_cell():
    """Iterated local search: at a local optimum the next run starts from the best cell found,
    ``kicks`` random one-parameter moves away (the second may move the same parameter again),
    never a cell already evaluated."""

    def objective(trial):
        for n in "abcd":
            trial.suggest_categorical(n, ["w", "x", "y", "z"])
        return 100.0 if trial.number == 0 else 0.0  # trial 0 is a local optimum

    study = study_of(LocalSearchSampler(n_startup_trials=1, seed=3, restart="perturb"))
    study.optimize(objective, n_trials=14)  # the start, its 12 neighbours, the restart
    start, restart = study.trials[0], study.trials[13]
    assert restart.system_attrs[RUN_KEY] == 1 and CENTER_KEY not in restart.system_attrs
    assert 1 <= sum(restart.params[n] != start.params[n] for n in "abcd") <= 2  # two moves
    assert cell(restart) not in {cell(t) for t in study.trials[:13]}
    with pytest.raises(ValueError, match="restart is 'random' or 'perturb'"):
        LocalSearchSampler(restart="anneal")


def test_running_trials_are_never_proposed_twice_even_from_another_sampler():
    storage = InMemoryStorage()
    study = study_of(LocalSearchSampler(n_startup_trials=3, seed=0), storage, "s")
    study.optimize(separable, n_trials=5)
    other = study_of(LocalSearchSampler(n_startup_trials=3, seed=0), storage, "s")  # same seed
    running = []
    for s in [study, other] * 4:  # eight workers, none has told yet
        trial = s.ask()
        running.append(tuple(sorted((n, trial.suggest_categorical(n, CHOICES)) for n in NAMES)))
    assert len(set(running)) == 8
    assert not set(running) & {cell(t) for t in study.trials if t.state.is_finished()}


def test_a_resumed_study_continues_the_climb():
    storage = InMemoryStorage()
    study = study_of(LocalSearchSampler(n_startup_trials=5, seed=0), storage, "r")
    study.optimize(separable, n_trials=12)
    resumed = study_of(LocalSearchSampler(n_startup_trials=5, seed=99), storage, "r")
    resumed.optimize(separable, n_trials=1)
    last = resumed.trials[-1]
    assert CENTER_KEY in last.system_attrs  # not a new random start
    assert last.system_attrs[RUN_KEY] == max(t.system_attrs[RUN_KEY] for t in study.trials[:12])
    assert cell(last) not in {cell(t) for t in resumed.trials[:-1]}


def test_conditional_parameters():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["conv", "pool"])
        if kind == "conv":
            return float(trial.suggest_int("width", 1, 4))
        return {"max": 5.0, "avg": 0.0, "none": 1.0}[
            trial.suggest_categorical("op", ["max", "avg", "none"])
        ]

    study = study_of(LocalSearchSampler(n_startup_trials=2, seed=2))
    study.optimize(objective, n_trials=7)  # 4 + 3 cells
    assert len({cell(t) for t in study.trials}) == 7
    assert study.best_value == 5.0


def test_int_parameters_move_by_one_step():
    def objective(trial):
        x = trial.suggest_int("x", 0, 20)
        y = trial.suggest_int("y", 0, 20, step=2)
        return -float((x - 13) ** 2 + (y - 6) ** 2)

    study = study_of(LocalSearchSampler(n_startup_trials=3, seed=0))
    study.optimize(objective, n_trials=60)
    assert study.best_params == {"x": 13, "y": 6}
    by_number = {t.number: t for t in study.trials}
    for t in study.trials:
        if CENTER_KEY in t.system_attrs:
            c = by_number[t.system_attrs[CENTER_KEY]]
            assert sorted(
                [abs(t.params["x"] - c.params["x"]), abs(t.params["y"] - c.params["y"])]
            ) in ([0, 1], [0, 2])


def test_neighbour_values():
    assert neighbour_values(CategoricalDistribution(["a", "b", "c"]), "b") == ["a", "c"]
    assert neighbour_values(IntDistribution(0, 10, step=5), 0) == [5]
    assert neighbour_values(IntDistribution(1, 1024, log=True), 1) == [2]
    assert neighbour_values(FloatDistribution(0.0, 1.0), 0.5) == pytest.approx([0.4, 0.6])
    assert neighbour_values(FloatDistribution(0.0, 1.0), 1.0) == pytest.approx([0.9])
    assert neighbour_values(FloatDistribution(1e-4, 1.0, log=True), 1e-2) == pytest.approx(
        [10**-2.4, 10**-1.6]
    )
    assert neighbour_values(FloatDistribution(0.0, 1.0, step=0.25), 0.25) == [0.0, 0.5]


def test_minimizing_and_float_spaces():
    def objective(trial):
        return (trial.suggest_float("x", -1.0, 1.0) - 0.3) ** 2

    study = study_of(LocalSearchSampler(n_startup_trials=5, seed=0), direction="minimize")
    study.optimize(objective, n_trials=40)
    assert study.best_value < 0.01  # within a tenth of the range of 0.3


def test_plans_are_stored_and_failures_count_as_visited():
    def objective(trial):
        v = [trial.suggest_categorical(n, ["x", "y"]) for n in "abc"]
        if v[0] == "y":
            raise ValueError("boom")
        return float(v.count("x"))

    study = study_of(LocalSearchSampler(n_startup_trials=2, seed=0))
    study.optimize(objective, n_trials=8, catch=(ValueError,))
    assert all(PLAN_KEY in t.system_attrs for t in study.trials)
    assert {t.state for t in study.trials} == {TrialState.COMPLETE, TrialState.FAIL}
    assert len({cell(t) for t in study.trials}) == 8


def test_single_objective_only():
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=LocalSearchSampler(seed=0)
    )
    with pytest.raises(ValueError, match="single-objective"):
        study.ask()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        LocalSearchSampler(n_startup_trials=0)
    with pytest.raises(ValueError):
        LocalSearchSampler(max_resample=0)


def test_best_improvement_evaluates_the_whole_neighbourhood_first():
    study = study_of(LocalSearchSampler(n_startup_trials=1, seed=0, first_improvement=False))
    study.optimize(separable, n_trials=13)  # the start and its 12 neighbours
    assert [t.system_attrs.get(CENTER_KEY) for t in study.trials] == [None] + [0] * 12
    study.optimize(separable, n_trials=1)
    best = max(study.trials[:13], key=lambda t: t.value)
    assert study.trials[-1].system_attrs[CENTER_KEY] == best.number
