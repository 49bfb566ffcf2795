"""Sampler and pruner names -> Optuna objects, and search nodes -> Optuna suggestions."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from nasblocks.errors import SearchError
from nasblocks.search.samplers.evolution import RegularizedEvolutionSampler
from nasblocks.search.samplers.local_search import LocalSearchSampler
from nasblocks.space import Choice, FloatRange, IntRange, Node, SearchSpace
from nasblocks.space.settings import PrunerSettings


class OptunaSource:
    """Answers a space's nodes with ``trial.suggest_*`` under the node's name."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def suggest(self, node: Node) -> Any:
        t = self.trial
        if isinstance(node, Choice):
            return t.suggest_categorical(node.name, list(node.labels))
        if isinstance(node, IntRange):
            return t.suggest_int(node.name, node.low, node.high, step=node.step, log=node.log)
        assert isinstance(node, FloatRange)
        return t.suggest_float(node.name, node.low, node.high, step=node.step, log=node.log)


def make_sampler(space: SearchSpace, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler the space's settings name, seeded."""
    s = space.settings.sampler
    multi = space.settings.multi_objective
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=10 if s.n_startup_trials is None else s.n_startup_trials,
                multivariate=True,
                # parallel workers see running trials as "lies", so they spread out
                constant_liar=True,
            )
        if s.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if s.name == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=s.population_size or 50
            )
        if s.name == "grid":
            return optuna.samplers.GridSampler(space.grid(), seed=seed)
        if s.name in ("evolution", "local_search") and multi:
            raise space.error(
                f"the {s.name} sampler is single-objective; use nsga2 or tpe with several "
                "objectives",
                ("search", "sampler"),
            )
        if s.name == "evolution":
            population = s.population_size or 10
            return RegularizedEvolutionSampler(
                population_size=population,
                tournament_size=min(s.tournament_size or 3, population),
                seed=seed,
                n_startup_trials=s.n_startup_trials,
            )
        if s.name == "local_search":
            startup = 10 if s.n_startup_trials is None else s.n_startup_trials
            if startup < 1:
                raise space.error(
                    "local_search needs at least one random start (n_startup_trials >= 1)",
                    ("search", "sampler", "n_startup_trials"),
                )
            return LocalSearchSampler(n_startup_trials=startup, seed=seed, restart=s.restart)
    raise SearchError(f"unknown sampler {s.name!r}")  # pragma: no cover (pydantic checked)


def make_pruner(settings: PrunerSettings, epochs: int, multi_objective: bool):
    """The pruner, fed validation accuracy per epoch. Optuna cannot prune multi-objective
    studies, so those get none."""
    if multi_objective or settings.name == "none":
        return optuna.pruners.NopPruner()
    if settings.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials, n_warmup_steps=settings.n_warmup_steps
        )
    if settings.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_resource, reduction_factor=settings.reduction_factor
        )
    if settings.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=settings.min_resource,
            max_resource=max(epochs, settings.min_resource),
            reduction_factor=settings.reduction_factor,
        )
    raise SearchError(f"unknown pruner {settings.name!r}")  # pragma: no cover
