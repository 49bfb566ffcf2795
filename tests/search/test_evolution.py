"""Regularized evolution: tournament selection, one-parameter mutation, aging."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from nasblocks.search.samplers.evolution import (
    MUTATED_KEY,
    PARENT_KEY,
    STARTUP_KEY,
    RegularizedEvolutionSampler,
)

DISTS = {
    "block": CategoricalDistribution(["basic", "bottleneck", "se"]),
    "depth": IntDistribution(1, 6),
    "lr": FloatDistribution(1e-3, 1.0, log=True),
}


def study_with(values, population=4, tournament=4, seed=0, direction="maximize"):
    sampler = RegularizedEvolutionSampler(population, tournament, seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    for i, v in enumerate(values):
        params = {
            "block": ["basic", "bottleneck", "se"][i % 3],
            "depth": 1 + i % 6,
            "lr": 0.01 * (i + 1),
        }
        study.add_trial(create_trial(params=params, distributions=DISTS, value=v))
    return study


def ask(study):
    trial = study.ask()
    trial.suggest_categorical("block", ["basic", "bottleneck", "se"])
    trial.suggest_int("depth", 1, 6)
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    frozen = study._storage.get_trial(trial._trial_id)
    return frozen


def test_samples_at_random_until_the_population_is_full():
    study = study_with([0.5, 0.6, 0.7])
    child = ask(study)
    assert PARENT_KEY not in child.system_attrs


def test_child_is_the_tournament_winner_with_exactly_one_parameter_changed():
    study = study_with([0.5, 0.9, 0.6, 0.7])  # tournament = whole population: trial 1 wins
    for _ in range(5):
        child = ask(study)
        parent = study.trials[child.system_attrs[PARENT_KEY]]
        assert parent.number == 1
        changed = [k for k in DISTS if child.params[k] != parent.params[k]]
        assert changed == [child.system_attrs[MUTATED_KEY]]
        study.tell(child.number, state=optuna.trial.TrialState.FAIL)  # keep the population


def test_minimizing_studies_pick_the_lowest_value():
    study = study_with([0.5, 0.9, 0.1, 0.7], direction="minimize")
    assert ask(study).system_attrs[PARENT_KEY] == 2


def test_oldest_member_ages_out_even_when_it_is_the_best():
    # trial 0 is the best ever, but with a population of 4 only trials 1-4 are alive
    study = study_with([0.99, 0.5, 0.6, 0.8, 0.7])
    sampler = study.sampler
    assert [t.number for t in sampler.population(study)] == [1, 2, 3, 4]
    for _ in range(5):
        child = ask(study)
        assert child.system_attrs[PARENT_KEY] == 3
        study.tell(child.number, state=optuna.trial.TrialState.FAIL)
    # a new completed child pushes trial 1 out
    child = ask(study)
    study.tell(child.number, 0.1)
    assert [t.number for t in sampler.population(study)] == [2, 3, 4, child.number]


def test_small_tournaments_sample_members_and_never_pick_outside_the_population():
    study = study_with([0.99, 0.1, 0.2, 0.3, 0.4], population=4, tournament=2, seed=3)
    parents = set()
    for _ in range(30):
        child = ask(study)
        parents.add(child.system_attrs[PARENT_KEY])
        study.tell(child.number, state=optuna.trial.TrialState.FAIL)
    assert 0 not in parents  # aged out
    assert 1 not in parents  # the worst can never win a tournament of two
    assert parents <= {2, 3, 4} and len(parents) >= 2


def test_pruned_and_failed_trials_are_not_in_the_population():
    study = study_with([0.5, 0.6])
    study.add_trial(
        create_trial(
            params={"block": "se", "depth": 2, "lr": 0.1},
            distributions=DISTS,
            state=optuna.trial.TrialState.PRUNED,
        )
    )
    assert len(study.sampler.population(study)) == 2


def test_same_seed_same_children():
    runs = []
    for _ in range(2):
        study = study_with([0.5, 0.9, 0.6, 0.7], tournament=2, seed=11)
        runs.append([ask(study).params for _ in range(4)])
    assert runs[0] == runs[1]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        RegularizedEvolutionSampler(population_size=1)
    with pytest.raises(ValueError):
        RegularizedEvolutionSampler(population_size=3, tournament_size=4)


# Start-up phase and no repeats.

OPS = ["a", "b", "c", "d", "e"]


def cell(trial):
    return tuple(sorted(trial.params.items()))


def small_objective(trial):
    return float(sum(OPS.index(trial.suggest_categorical(n, OPS[:3])) for n in "xy"))


def test_startup_trials_default_to_the_population_size_and_are_marked():
    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolutionSampler(4, 2))
    study.optimize(small_objective, n_trials=6)
    assert [STARTUP_KEY in t.system_attrs for t in study.trials] == [True] * 4 + [False] * 2
    assert all(PARENT_KEY in t.system_attrs for t in study.trials[4:])


def test_fewer_startup_trials_evolve_a_partial_population():
    sampler = RegularizedEvolutionSampler(10, 3, seed=0, n_startup_trials=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(small_objective, n_trials=3)
    assert study.trials[2].system_attrs[PARENT_KEY] in (0, 1)


def test_balanced_startup_uses_every_choice_equally_often():
    def objective(trial):
        trial.suggest_int("width", 0, 999)
        return float(OPS.index(trial.suggest_categorical("op", OPS)))

    sampler = RegularizedEvolutionSampler(10, 3, seed=0, startup="balanced")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=10)  # trial 0 is random (no distribution known yet)
    ops = [t.params["op"] for t in study.trials]
    counts = sorted(ops.count(o) for o in OPS)
    assert counts == [2, 2, 2, 2, 2]
    strata = {t.params["width"] // 100 for t in study.trials}
    assert len(strata) == 10  # one width in each tenth of the range


def test_children_never_repeat_a_trial_while_unseen_cells_remain():
    sampler = RegularizedEvolutionSampler(2, 2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(small_objective, n_trials=9)  # 3 x 3 cells: all of them
    assert len({cell(t) for t in study.trials}) == 9


def test_running_children_are_not_proposed_twice():
    study = study_with([0.5, 0.9, 0.6, 0.7])  # trial 1 always wins
    other = optuna.load_study(
        study_name=study.study_name,
        storage=study._storage,
        sampler=RegularizedEvolutionSampler(4, 4, seed=0),
    )
    children = [ask(s) for s in [study, other] * 3]  # all RUNNING at once
    assert len({cell(c) for c in children}) == 6
    assert all(c.system_attrs[PARENT_KEY] == 1 for c in children)


def test_when_every_mutation_repeats_a_trial_an_unseen_cell_is_drawn():
    sampler = RegularizedEvolutionSampler(2, 2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = {n: CategoricalDistribution(OPS[:3]) for n in "xy"}
    # trial 0 and all four of its neighbours, and trial 1's four: (c, c) is the only one left
    seen = [
        ("a", "a"),
        ("b", "a"),
        ("c", "a"),
        ("a", "b"),
        ("a", "c"),
        ("b", "b"),
        ("c", "b"),
        ("b", "c"),
    ]
    for i, (x, y) in enumerate(seen):
        value = 1.0 if i in (0, 5) else 0.0
        study.add_trial(create_trial(params={"x": x, "y": y}, distributions=dists, value=value))
    # the population is the two latest completed trials, (c, b) and (b, c): their
    # neighbours include (c, c), so mutation finds it
    study.optimize(small_objective, n_trials=1)
    assert cell(study.trials[-1]) == (("x", "c"), ("y", "c"))
    study.optimize(small_objective, n_trials=1)  # nothing unseen left: a repeat is accepted
    last = study.trials[-1]
    assert len(study.trials) == 10 and cell(last) in {cell(t) for t in study.trials[:-1]}
    assert PARENT_KEY not in last.system_attrs and STARTUP_KEY not in last.system_attrs


def test_bad_startup_is_refused():
    with pytest.raises(ValueError, match="startup"):
        RegularizedEvolutionSampler(startup="lhs")
    with pytest.raises(ValueError):
        RegularizedEvolutionSampler(n_startup_trials=-1)
