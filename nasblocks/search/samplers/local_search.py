"""Local search (hill climbing with random restarts) as an Optuna sampler.

White, Nolen, Savani, "Exploring the Loss Landscape in Neural Architecture Search" (UAI 2021):
on NAS benchmarks, plain local search over one-edit neighbourhoods is as good as most
published NAS methods. As in naszilla's and NASLib's implementations:

1. Sample ``n_startup_trials`` architectures at random (no repeats; default 10, ``num_init``
   in both); the best is the centre.
2. Evaluate the centre's neighbours (every parameter set one move away, see
   :func:`~nasblocks.search.samplers.neighbourhood.neighbour_values`), in random order,
   skipping any the study already holds. First improvement (naszilla's default,
   ``query_full_nbhd=False``): as soon as a neighbour beats the centre it becomes the centre.
   Best improvement (the paper's Algorithm 1, NASLib's ``LocalSearch``): evaluate the whole
   neighbourhood, then move to its best member if that beats the centre. First improvement is
   the default: it was better at every budget on every landscape of benchmarks/search_quality.py.
3. A centre whose neighbours are all evaluated and none better is a local optimum: restart
   from one new random architecture (a new *run*) and climb again. With
   ``restart="perturb"`` the new run starts instead from the best architecture found,
   ``kicks`` (2) random one-parameter moves away: iterated local search
   (Lourenco, Martin, Stutzle, "Iterated Local Search", 2003), which keeps the climb near
   good regions. On NAS-Bench-201 it was better on the table, its permuted and
   size-penalised versions and the iid landscape, and worse on the pairwise-interaction
   landscape (benchmarks/RESULTS.md).

No state lives in the sampler: every decision is recomputed from ``study.get_trials()``, where
each trial records its run, its centre and its planned parameters (system attributes). A
resumed study, or a new sampler in another process, continues the same climb; parallel
workers never propose what a RUNNING trial will evaluate. When every unevaluated neighbour of
the centre is still running, a worker does not wait: it explores the next-best member of the
run that has unevaluated neighbours (or, failing that, a random architecture).

Trials the sampler did not plan (enqueued, or from another sampler before a resume) belong to
run 0 and count as its random starts. Parameters outside the plan (a branch of a conditional
space first reached by a move) are sampled at random. Single-objective only.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nasblocks.search.samplers.neighbourhood import (
    PLAN_KEY,
    Params,
    PlanningSampler,
    Visited,
    known_distributions,
    neighbours,
    random_plan,
    set_system_attr,
)

RUN_KEY = "local_search:run"
CENTER_KEY = "local_search:center"  # the number of the trial this one is a neighbour of


class LocalSearchSampler(PlanningSampler):
    """Hill climbing over one-parameter moves with random restarts (White et al. 2021)."""

    def __init__(
        self,
        n_startup_trials: int = 10,
        seed: int | None = None,
        *,
        first_improvement: bool = True,
        restart: str = "random",
        kicks: int = 2,
        max_resample: int = 100,
    ) -> None:
        if n_startup_trials < 1:
            raise ValueError("n_startup_trials must be at least 1")
        if restart not in ("random", "perturb"):
            raise ValueError(f"restart is 'random' or 'perturb', not {restart!r}")
        self.n_startup_trials = n_startup_trials
        self.first_improvement = first_improvement
        self.restart, self.kicks = restart, kicks
        super().__init__(seed, max_resample)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) != 1:
            raise ValueError("the local-search sampler is single-objective")
        trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        visited = Visited(trials, study.direction)
        run = max((int(t.system_attrs.get(RUN_KEY, 0)) for t in trials), default=0)
        members = [t for t in trials if int(t.system_attrs.get(RUN_KEY, 0)) == run]
        starts = sum(CENTER_KEY not in t.system_attrs for t in members)
        done = [t for t in members if t.state == TrialState.COMPLETE]
        plan: Params | None = None
        center: FrozenTrial | None = None
        if starts >= (self.n_startup_trials if run == 0 else 1) and done:
            plan, center = self._move(done, visited)
            if plan is None and center is None:  # a local optimum: restart
                run += 1
                if self.restart == "perturb":
                    plan = self._perturbed(trials, visited)
        if plan is None:
            plan, center = self._random_plan(trials, visited), None
        self._plans[trial.number] = plan
        set_system_attr(study, trial, RUN_KEY, run)
        set_system_attr(study, trial, PLAN_KEY, plan)
        if center is not None:
            set_system_attr(study, trial, CENTER_KEY, center.number)

    def _move(
        self, done: Sequence[FrozenTrial], visited: Visited
    ) -> tuple[Params | None, FrozenTrial | None]:
        """The next neighbour to evaluate and its centre: (None, None) at a local optimum,
        (None, centre) when nothing is left to explore but running trials may still move."""
        center = self._center(done, visited)
        while True:
            fresh, pending, best = self._survey(center, visited)
            if fresh:
                return fresh[int(self._rng.randint(len(fresh)))], center
            if pending:
                break
            if best is None or visited.score(best) <= visited.score(center):
                return None, None  # every neighbour evaluated, none better
            center = best  # best improvement: the neighbourhood is done, move
        # The centre's last neighbours are still running: explore the next-best member.
        for t in sorted(done, key=lambda t: (-visited.score(t), t.number)):
            if t.number != center.number:
                fresh = self._survey(t, visited)[0]
                if fresh:
                    return fresh[int(self._rng.randint(len(fresh)))], t
        return None, center  # nothing to explore: a random architecture in this run

    def _center(self, done: Sequence[FrozenTrial], visited: Visited) -> FrozenTrial:
        """Where the run's climb stands (``done``: the run's COMPLETE trials). Best
        improvement: the best random start; :meth:`_move` then retraces the moves (a
        centre whose neighbourhood is all evaluated moves to its best neighbour). First
        improvement: the run's best trial, moved further to any better neighbour the study
        already holds (from another run, or enqueued): such a move costs no query."""
        if not self.first_improvement:
            starts = [t for t in done if CENTER_KEY not in t.system_attrs] or list(done)
            return max(starts, key=lambda t: (visited.score(t), -t.number))
        best = max(done, key=lambda t: (visited.score(t), -t.number))
        center = best
        while True:
            better = [
                m for n in self._neighbours(center) if (m := visited.best_match(n)) is not None
            ]
            top = max(better, key=lambda t: (visited.score(t), -t.number), default=None)
            if top is None or visited.score(top) <= visited.score(center):
                return center
            center = top

    def _survey(
        self, center: FrozenTrial, visited: Visited
    ) -> tuple[list[Params], bool, FrozenTrial | None]:
        """The centre's unvisited neighbours, whether any visited one is still running, and
        the best evaluated one."""
        fresh: list[Params] = []
        pending = False
        best: FrozenTrial | None = None
        for n in self._neighbours(center):
            found = visited.matches(n)
            if not found:
                fresh.append(n)
                continue
            if all(not t.state.is_finished() for t in found):
                pending = True
            m = visited.best_match(n)
            if m is not None and (best is None or visited.score(m) > visited.score(best)):
                best = m
        return fresh, pending, best

    def _neighbours(self, center: FrozenTrial) -> list[Params]:
        return neighbours(center.params, center.distributions)

    def _perturbed(self, trials: Sequence[FrozenTrial], visited: Visited) -> Params | None:
        """The best architecture found, ``kicks`` random one-parameter moves away (a move may
        hit a parameter an earlier one moved), not evaluated yet; None when no such one is
        found (a random restart then)."""
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if not done:
            return None
        best = max(done, key=lambda t: (visited.score(t), -t.number))
        for _ in range(self.max_resample):
            params: Params = dict(best.params)
            for _ in range(self.kicks):
                moves = neighbours(params, best.distributions)
                if not moves:
                    return None
                params = moves[int(self._rng.randint(len(moves)))]
            if params != best.params and params not in visited:
                return params
        return None

    def _random_plan(self, trials: Sequence[FrozenTrial], visited: Visited) -> Params:
        dists = known_distributions(trials)
        plan: Params = {}
        for _ in range(self.max_resample if dists else 0):
            plan = random_plan(dists, self._rng)
            if plan not in visited:
                break
        return plan
