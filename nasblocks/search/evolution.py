"""Regularized (aging) evolution as an Optuna sampler.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture
Search" (AAAI 2019), Algorithm 1: keep a population of the ``population_size`` most recently
finished trials; for each new trial draw ``tournament_size`` members at random, take the best
as parent, and copy its parameters with exactly one of them changed (mutation). New trials
push the oldest out of the population (aging), whatever their accuracy — that is the
"regularization". Until the population is full, trials are sampled at random.

Only COMPLETE trials join the population: pruned, infeasible and failed ones never were
fully evaluated. Parameters the parent does not have (another branch of a conditional
choice, reached through the mutation) are sampled at random. Single-objective only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

PARENT_KEY = "evolution:parent"
MUTATED_KEY = "evolution:mutated"


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution: tournament selection, one-parameter mutation, oldest member dies."""

    def __init__(
        self, population_size: int = 10, tournament_size: int = 3, seed: int | None = None
    ) -> None:
        if population_size < 2:
            raise ValueError("population_size must be at least 2")
        if not 1 <= tournament_size <= population_size:
            raise ValueError("tournament_size must be between 1 and population_size")
        self.population_size = population_size
        self.tournament_size = tournament_size
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, tuple[FrozenTrial, str]] = {}  # trial id -> (parent, mutated)

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random.reseed_rng()

    # Optuna's protocol: everything is sampled independently, parameter by parameter.
    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def population(self, study: Study) -> list[FrozenTrial]:
        """The ``population_size`` most recently completed trials, oldest first."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        return done[-self.population_size :]

    def select_parent(self, study: Study, population: Sequence[FrozenTrial]) -> FrozenTrial:
        """Best of ``tournament_size`` members drawn without replacement."""
        if len(study.directions) != 1:
            raise ValueError("the evolution sampler is single-objective; use nsga2")
        picks = self._rng.choice(len(population), size=self.tournament_size, replace=False)
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        best = min(sorted(picks.tolist()), key=lambda i: (sign * _value(population[i]), i))
        return population[best]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        population = self.population(study)
        if len(population) < self.population_size:
            return  # still filling the population: random trials
        parent = self.select_parent(study, population)
        mutable = [n for n, d in parent.distributions.items() if _cardinality(d) != 1]
        names = sorted(mutable or parent.distributions)
        if not names:
            return
        mutated = names[int(self._rng.randint(len(names)))]
        self._plans[trial._trial_id] = (parent, mutated)
        study._storage.set_trial_system_attr(trial._trial_id, PARENT_KEY, parent.number)
        study._storage.set_trial_system_attr(trial._trial_id, MUTATED_KEY, mutated)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        plan = self._plans.get(trial._trial_id)
        if plan is None:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        parent, mutated = plan
        value = parent.params.get(param_name)
        inherited = param_name in parent.params and param_name != mutated
        if inherited and _contains(param_distribution, value):
            return value
        if param_name == mutated:
            return self._mutate(param_distribution, value)
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._plans.pop(trial._trial_id, None)

    def _mutate(self, dist: BaseDistribution, current: Any) -> Any:
        """A value of ``dist`` other than ``current`` (when there is another)."""
        rng = self._rng
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if not (c == current and type(c) is type(current))]
            pool = others or list(dist.choices)
            return pool[int(rng.randint(len(pool)))]
        if isinstance(dist, IntDistribution):
            if dist.log:
                for _ in range(16):
                    v = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
                    v = min(max(v, dist.low), dist.high)
                    if v != current:
                        return v
                return v
            values = [v for v in range(dist.low, dist.high + 1, dist.step) if v != current]
            if not values:
                return dist.low
            return values[int(rng.randint(len(values)))]
        assert isinstance(dist, FloatDistribution)
        if dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            grid = [dist.low + i * dist.step for i in range(n + 1)]
            values = [v for v in grid if current is None or abs(v - current) > 1e-12]
            return values[int(rng.randint(len(values)))] if values else dist.low
        if dist.log:
            return float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        return float(rng.uniform(dist.low, dist.high))


def _value(trial: FrozenTrial) -> float:
    assert trial.value is not None
    return trial.value


def _cardinality(dist: BaseDistribution) -> float:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    if isinstance(dist, FloatDistribution):
        return math.inf if dist.high > dist.low else 1
    return math.inf


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False
