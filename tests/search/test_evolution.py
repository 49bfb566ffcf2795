"""Regularized evolution: tournament selection, one-parameter mutation, aging."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from nasblocks.search.evolution import MUTATED_KEY, PARENT_KEY, RegularizedEvolutionSampler

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
