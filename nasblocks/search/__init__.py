"""Architecture search: Optuna studies over search spaces, one pure function per trial.

>>> from nasblocks.search import search
>>> outcome = search("search_spaces/resnet_like.yaml", overrides={"search.budget.trials": 5})
>>> outcome.out / "best.yaml"

The pieces, usable alone: :func:`run_trial` (concrete spec + TrainConfig + data -> metrics,
what every backend calls), :func:`make_candidate` (validate, measure, check constraints),
:class:`RegularizedEvolutionSampler`, :func:`write_report`. Importing this package imports
Optuna (not torch); torch is imported when a trial runs.

Where each part lives:

- here: one run (:mod:`.engine`, :mod:`.run`), Optuna's objective (:mod:`.objective`), one
  trial from sample to record (:mod:`.pipeline`, with :mod:`.candidate` and
  :mod:`.outcomes`), the budget (:mod:`.budget`), what ``validate`` says of a space
  (:mod:`.survey`), Optuna's logging (:mod:`.logs`);
- :mod:`.evaluators`: how a trial is scored (trained, or looked up in a table; the third,
  inherited weights, is :mod:`nasblocks.supernet.evaluator`);
- :mod:`.samplers`: sampler and pruner names -> Optuna objects, search nodes -> Optuna
  suggestions; regularized evolution, local search, the proxy warm-up;
- :mod:`.backends`: where studies live (storage) and how trials run (worker processes,
  Ray Tune);
- :mod:`.outputs`: the run folder, the result files, the report, the progress display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "search_ray",
    "Candidate",
    "DataHandle",
    "Infeasible",
    "LocalSearchSampler",
    "RegularizedEvolutionSampler",
    "SearchOutcome",
    "TrialOutcome",
    "load_study",
    "make_candidate",
    "run_trial",
    "search",
    "write_outputs",
    "write_report",
]

_LAZY = {
    "search_ray": "nasblocks.search.backends.ray_backend",
    "Candidate": "nasblocks.search.candidate",
    "Infeasible": "nasblocks.search.candidate",
    "make_candidate": "nasblocks.search.candidate",
    "DataHandle": "nasblocks.search.evaluators.trained",
    "TrialOutcome": "nasblocks.search.evaluators.trained",
    "run_trial": "nasblocks.search.evaluators.trained",
    "RegularizedEvolutionSampler": "nasblocks.search.samplers.evolution",
    "LocalSearchSampler": "nasblocks.search.samplers.local_search",
    "SearchOutcome": "nasblocks.search.engine",
    "search": "nasblocks.search.engine",
    "load_study": "nasblocks.search.outputs.results",
    "write_outputs": "nasblocks.search.outputs.results",
    "write_report": "nasblocks.search.outputs.report",
}

if TYPE_CHECKING:
    from nasblocks.search.candidate import Candidate, Infeasible, make_candidate
    from nasblocks.search.engine import SearchOutcome, search
    from nasblocks.search.evaluators.trained import DataHandle, TrialOutcome, run_trial
    from nasblocks.search.outputs.report import write_report
    from nasblocks.search.outputs.results import load_study, write_outputs
    from nasblocks.search.samplers.evolution import RegularizedEvolutionSampler
    from nasblocks.search.samplers.local_search import LocalSearchSampler


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasblocks.search' has no attribute {name!r}")
