"""Regularized (aging) evolution as an Optuna sampler.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture
Search" (AAAI 2019), Algorithm 1: keep a population of the ``population_size`` most recently
finished trials; for each new trial draw ``tournament_size`` members at random, take the best
as parent, and copy its parameters with exactly one of them changed (mutation). New trials
push the oldest out of the population (aging), whatever their accuracy — that is the
"regularization".

Start-up: the first ``n_startup_trials`` trials (by number; default ``population_size``, as
in the paper and NASLib) are drawn by ``startup``: ``"random"`` (independent uniform values,
the paper's choice) or ``"balanced"`` (each parameter spread over its values or strata, see
:func:`~nasblocks.search.samplers.neighbourhood.balanced_plan`). Either way no start-up trial
repeats a trial the study holds. Until a trial has completed, trials stay start-up trials.

No repeats: a child that would repeat a trial of the study (finished, or running with the
same plan; see :class:`~nasblocks.search.samplers.neighbourhood.Visited`) is redrawn: a new
mutation of the same parent, and a new tournament every ``_RETOURNAMENT`` attempts, up to
``max_resample`` attempts; then a random unseen architecture; only if that fails too is a
repeat accepted. On NAS-Bench-201 (24 neighbours per cell) repeats otherwise waste about a
seventh of the queries of a 200-query search (benchmarks/RESULTS.md).

Only COMPLETE trials join the population: pruned, infeasible and failed ones never were
fully evaluated (they still count as visited). Parameters the parent does not have (another
branch of a conditional choice, reached through the mutation) are sampled at random.
Single-objective only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasblocks.search.samplers.neighbourhood import (
    Params,
    PlanningSampler,
    Visited,
    balanced_plan,
    cardinality,
    known_distributions,
    planned,
    random_plan,
    set_system_attr,
)

PARENT_KEY = "evolution:parent"
MUTATED_KEY = "evolution:mutated"
STARTUP_KEY = "evolution:startup"

Startup = Literal["random", "balanced"]
_RETOURNAMENT = 10  # failed mutations of one parent before a new tournament


class RegularizedEvolutionSampler(PlanningSampler):
    """Aging evolution: tournament selection, one-parameter mutation, oldest member dies."""

    def __init__(
        self,
        population_size: int = 10,
        tournament_size: int = 3,
        seed: int | None = None,
        *,
        n_startup_trials: int | None = None,
        startup: Startup = "random",
        max_resample: int = 100,
    ) -> None:
        if population_size < 2:
            raise ValueError("population_size must be at least 2")
        if not 1 <= tournament_size <= population_size:
            raise ValueError("tournament_size must be between 1 and population_size")
        if n_startup_trials is not None and n_startup_trials < 0:
            raise ValueError("n_startup_trials must be at least 0")
        if startup not in ("random", "balanced"):
            raise ValueError(f"startup must be 'random' or 'balanced', not {startup!r}")
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.n_startup_trials = population_size if n_startup_trials is None else n_startup_trials
        self.startup = startup
        self._seed = seed
        super().__init__(seed, max_resample)

    def population(self, study: Study) -> list[FrozenTrial]:
        """The ``population_size`` most recently completed trials, oldest first."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        return done[-self.population_size :]

    def select_parent(self, study: Study, population: Sequence[FrozenTrial]) -> FrozenTrial:
        """Best of ``tournament_size`` members drawn without replacement (fewer while the
        population is not yet full)."""
        if len(study.directions) != 1:
            raise ValueError("the evolution sampler is single-objective; use nsga2")
        size = min(self.tournament_size, len(population))
        picks = self._rng.choice(len(population), size=size, replace=False)
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        best = min(sorted(picks.tolist()), key=lambda i: (sign * _value(population[i]), i))
        return population[best]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) != 1:
            raise ValueError("the evolution sampler is single-objective; use nsga2")
        trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        visited = Visited(trials, study.direction)
        population = self.population(study)
        plan: Params | None = None
        startup = trial.number < self.n_startup_trials or not population
        if not startup:
            plan = self._child(study, trial, population, visited)
        if plan is None:  # a start-up trial, or every child would repeat a trial
            plan = self._startup_plan(trials, visited)
        if startup:
            set_system_attr(study, trial, STARTUP_KEY, True)
        self._set_plan(study, trial, plan)

    def _child(
        self,
        study: Study,
        trial: FrozenTrial,
        population: Sequence[FrozenTrial],
        visited: Visited,
    ) -> Params | None:
        """A parent's parameters with one changed, not yet in the study; None if every
        attempt repeated a trial."""
        parent = self.select_parent(study, population)
        for attempt in range(self.max_resample):
            if attempt and attempt % _RETOURNAMENT == 0:
                parent = self.select_parent(study, population)
            mutable = [n for n, d in parent.distributions.items() if cardinality(d) != 1]
            names = sorted(mutable or parent.distributions)
            if not names:
                return None
            mutated = names[int(self._rng.randint(len(names)))]
            dist = parent.distributions[mutated]
            plan = {**parent.params, mutated: self._mutate(dist, parent.params[mutated])}
            if plan not in visited:
                set_system_attr(study, trial, PARENT_KEY, parent.number)
                set_system_attr(study, trial, MUTATED_KEY, mutated)
                return plan
        return None

    def _startup_plan(self, trials: Sequence[FrozenTrial], visited: Visited) -> Params:
        dists = known_distributions(trials)
        used = [planned(t) for t in trials if t.system_attrs.get(STARTUP_KEY)]
        plan: Params = {}
        for _ in range(self.max_resample if dists else 0):
            if self.startup == "balanced":
                plan = balanced_plan(dists, used, max(self.n_startup_trials, 1), self._rng)
            else:
                plan = random_plan(dists, self._rng)
            if plan not in visited:
                break
        return plan

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
            steps = [v for v in grid if current is None or abs(v - current) > 1e-12]
            return steps[int(rng.randint(len(steps)))] if steps else dist.low
        if dist.log:
            return float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        return float(rng.uniform(dist.low, dist.high))


def _value(trial: FrozenTrial) -> float:
    assert trial.value is not None
    return trial.value
