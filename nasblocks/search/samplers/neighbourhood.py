"""What a study has already tried, and one-parameter neighbourhoods: shared by the NAS samplers.

Tabular NAS spaces are small (NAS-Bench-201: 15,625 cells), so a sampler that proposes an
architecture the study already holds wastes a query; naszilla's local search (White et al.)
keeps a set of queried hashes for that reason. A sampler here decides a trial's whole
parameter set in ``before_trial`` (a *plan*, stored under :data:`PLAN_KEY` so workers in
other processes see what running trials will become) and checks it against
:class:`Visited`, built from ``study.get_trials()`` on every call: state lives in the
storage, not in the sampler, so a resumed study or a second worker sees the same history.

Conditional (define-by-run) spaces: a plan names values for every parameter it knows; the
trial then suggests only some of them. A finished trial ``t`` *matches* a plan when every
parameter ``t`` has takes the same value in the plan: a deterministic objective that follows
the plan suggests exactly ``t``'s parameters, in ``t``'s order, so it would be ``t`` again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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

PLAN_KEY = "nasblocks:plan"

# A float (or a log-scaled int) neighbour lies a tenth of the range away (in log space for
# log scales): ten moves cross the range, the resolution of a coarse grid.
FLOAT_MOVE = 0.1

Params = dict[str, Any]


def planned(trial: FrozenTrial) -> Params:
    """What ``trial`` is, or will be: its plan overridden by the values it already has."""
    return {**trial.system_attrs.get(PLAN_KEY, {}), **trial.params}


class Visited:
    """The parameter sets of a study's trials, looked up by plan (see the module docstring).

    Finished trials count by their parameters; unfinished ones (RUNNING, WAITING) by their
    plan, and not at all without one (half-suggested parameters would block every plan that
    shares them). Failed and pruned trials count as visited: trying them again would repeat
    the same failure or cost.
    """

    def __init__(self, trials: Iterable[FrozenTrial], direction: StudyDirection) -> None:
        self._sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        # names -> values in sorted-name order -> the trials with them
        self._index: dict[tuple[str, ...], dict[tuple[Any, ...], list[FrozenTrial]]] = {}
        for t in trials:
            if t.state.is_finished():
                self._add(t.params, t)
                if PLAN_KEY in t.system_attrs:
                    self._add(t.system_attrs[PLAN_KEY], t)
            elif PLAN_KEY in t.system_attrs:
                self._add(planned(t), t)

    def _add(self, params: Params, trial: FrozenTrial) -> None:
        if not params:
            return  # an objective with no parameters: matching it would block everything
        names = tuple(sorted(params))
        values = tuple(params[n] for n in names)
        self._index.setdefault(names, {}).setdefault(values, []).append(trial)

    def matches(self, plan: Params) -> list[FrozenTrial]:
        """The trials a trial following ``plan`` would repeat."""
        found: list[FrozenTrial] = []
        for names, table in self._index.items():
            if all(n in plan for n in names):
                found.extend(table.get(tuple(plan[n] for n in names), ()))
        return found

    def __contains__(self, plan: Params) -> bool:
        return bool(self.matches(plan))

    def score(self, trial: FrozenTrial) -> float:
        """Larger is better, whatever the direction; -inf without a value."""
        if trial.state != TrialState.COMPLETE or trial.value is None:
            return -math.inf
        return self._sign * trial.value

    def best_match(self, plan: Params) -> FrozenTrial | None:
        """The best COMPLETE trial a plan would repeat, if any."""
        done = [t for t in self.matches(plan) if t.state == TrialState.COMPLETE]
        return max(done, key=lambda t: (self.score(t), -t.number)) if done else None


def known_distributions(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every parameter seen so far, with its latest distribution."""
    out: dict[str, BaseDistribution] = {}
    for t in sorted(trials, key=lambda t: t.number):
        out.update(t.distributions)
    return out


def random_plan(distributions: dict[str, BaseDistribution], rng: np.random.RandomState) -> Params:
    """Independent uniform values (log-uniform on log scales), as Optuna's RandomSampler."""
    return {n: random_value(d, rng) for n, d in sorted(distributions.items())}


def random_value(dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.randint(len(dist.choices)))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            v = math.exp(rng.uniform(math.log(dist.low - 0.5), math.log(dist.high + 0.5)))
            return min(max(int(round(v)), dist.low), dist.high)
        return dist.low + dist.step * int(rng.randint((dist.high - dist.low) // dist.step + 1))
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step))
        return min(dist.low + dist.step * int(rng.randint(n + 1)), dist.high)
    if dist.log:
        return float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
    return float(rng.uniform(dist.low, dist.high))


def neighbours(params: Params, distributions: dict[str, BaseDistribution]) -> list[Params]:
    """Every parameter set that differs from ``params`` in exactly one value (see
    :func:`neighbour_values`), in a fixed order."""
    out = []
    for name in sorted(params):
        dist = distributions.get(name)
        if dist is None:
            continue
        for v in neighbour_values(dist, params[name]):
            out.append({**params, name: v})
    return out


def neighbour_values(dist: BaseDistribution, current: Any) -> list[Any]:
    """The values one move from ``current``: every other choice of a categorical; the
    adjacent grid points of a stepped int or float; for a log int or a continuous float,
    the points :data:`FLOAT_MOVE` of the range away on either side (clipped to the bounds; a
    log int moves by at least one)."""
    if isinstance(dist, CategoricalDistribution):
        return [c for c in dist.choices if not _same(c, current)]
    if isinstance(dist, IntDistribution):
        if not dist.log:
            cands = [current - dist.step, current + dist.step]
        else:
            factor = math.exp(FLOAT_MOVE * math.log(dist.high / dist.low))
            cands = [
                min(current - 1, int(round(current / factor))),
                max(current + 1, int(round(current * factor))),
            ]
        return [v for v in cands if dist.low <= v <= dist.high]
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        cands = [current - dist.step, current + dist.step]
        return [v for v in cands if dist.low - 1e-12 <= v <= dist.high + 1e-12]
    if dist.log:
        move = FLOAT_MOVE * math.log(dist.high / dist.low)
        cands = [math.exp(math.log(current) - move), math.exp(math.log(current) + move)]
    else:
        move = FLOAT_MOVE * (dist.high - dist.low)
        cands = [current - move, current + move]
    clipped = [min(max(v, dist.low), dist.high) for v in cands]
    return [float(v) for v in dict.fromkeys(clipped) if v != current]


def cardinality(dist: BaseDistribution) -> float:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            return int(round((dist.high - dist.low) / dist.step)) + 1
        return math.inf if dist.high > dist.low else 1
    return math.inf


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a valid value of ``dist`` (a plan may outlive a distribution)."""
    if isinstance(dist, CategoricalDistribution):
        return any(_same(c, value) for c in dist.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not dist.low <= value <= dist.high:  # type: ignore[attr-defined]
        return False
    if isinstance(dist, IntDistribution):
        return float(value).is_integer() and (int(value) - dist.low) % dist.step == 0
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        k = (value - dist.low) / dist.step
        return abs(k - round(k)) < 1e-8
    return isinstance(dist, FloatDistribution)


def set_system_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Record sampler state on the trial in the storage, where every worker reads it. Optuna
    has no public call for this; its own samplers (TPE, NSGA-II, CMA-ES, grid) make this one."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def balanced_plan(
    distributions: dict[str, BaseDistribution],
    used: Sequence[Params],
    strata: int,
    rng: np.random.RandomState,
) -> Params:
    """A start-up plan that spreads every parameter over its range, one parameter at a time
    (Latin-hypercube style; McKay et al. 1979): a categorical or a grid of at most ``strata``
    values takes one of its least-used values so far, anything larger one of ``strata``
    equal-width strata (log-width on log scales) used least so far, uniformly within it.
    ``used``: the plans of the earlier start-up trials. Ties break at random, so the choices
    are not correlated across parameters."""
    plan: Params = {}
    for name, dist in sorted(distributions.items()):
        seen = [p[name] for p in used if name in p]
        values = _grid(dist, strata)
        if values is not None:
            counts = [sum(_same(v, s) for s in seen) for v in values]
            least = [v for v, c in zip(values, counts, strict=True) if c == min(counts)]
            plan[name] = least[int(rng.randint(len(least)))]
            continue
        assert isinstance(dist, (IntDistribution, FloatDistribution))
        lo, hi = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
        width = (hi - lo) / strata
        counts = [0] * strata
        for s in seen:
            if contains(dist, s):
                x = math.log(s) if dist.log else s
                counts[min(int((x - lo) / width), strata - 1)] += 1
        least = [i for i, c in enumerate(counts) if c == min(counts)]
        i = least[int(rng.randint(len(least)))]
        x = rng.uniform(lo + i * width, lo + (i + 1) * width)
        v = math.exp(x) if dist.log else x
        if isinstance(dist, IntDistribution):
            v = dist.low + dist.step * int(round((v - dist.low) / dist.step))
            plan[name] = min(max(int(v), dist.low), dist.high)
        elif dist.step is not None:
            v = dist.low + dist.step * round((v - dist.low) / dist.step)
            plan[name] = float(min(max(v, dist.low), dist.high))
        else:
            plan[name] = float(min(max(v, dist.low), dist.high))
    return plan


def _grid(dist: BaseDistribution, limit: int) -> list[Any] | None:
    """All values of ``dist`` when there are at most ``limit`` of them (categoricals always)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if cardinality(dist) > limit:
        return None
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    assert isinstance(dist, FloatDistribution)
    if dist.step is None:  # low == high
        return [dist.low]
    n = int(round((dist.high - dist.low) / dist.step))
    return [min(dist.low + i * dist.step, dist.high) for i in range(n + 1)]


class PlanningSampler(BaseSampler):
    """Base of the NAS samplers: ``before_trial`` decides a plan (subclasses), every
    ``suggest_*`` answers from it, and a parameter the plan does not cover (a branch of a
    conditional choice it did not know) is drawn at random."""

    def __init__(self, seed: int | None, max_resample: int) -> None:
        if max_resample < 1:
            raise ValueError("max_resample must be at least 1")
        self.max_resample = max_resample
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, Params] = {}  # trial number -> planned params (also in storage)

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

    def _set_plan(self, study: Study, trial: FrozenTrial, plan: Params) -> None:
        self._plans[trial.number] = plan
        set_system_attr(study, trial, PLAN_KEY, plan)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        plan = self._plans.get(trial.number)
        if plan is None:
            plan = trial.system_attrs.get(PLAN_KEY, {})
        if param_name in plan and contains(param_distribution, plan[param_name]):
            return plan[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._plans.pop(trial.number, None)
