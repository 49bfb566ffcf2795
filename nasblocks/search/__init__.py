"""Architecture search: Optuna studies over search spaces, one pure function per trial.

>>> from nasblocks.search import search
>>> outcome = search("search_spaces/resnet_like.yaml", overrides={"search.budget.trials": 5})
>>> outcome.out / "best.yaml"

The pieces, usable alone: :func:`run_trial` (concrete spec + TrainConfig + data -> metrics,
what every backend calls), :func:`make_candidate` (validate, measure, check constraints),
:class:`RegularizedEvolutionSampler`, :func:`write_report`. Importing this package imports
Optuna (not torch); torch is imported when a trial runs.
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
    "search_ray": "nasblocks.search.ray_backend",
    "Candidate": "nasblocks.search.candidate",
    "Infeasible": "nasblocks.search.candidate",
    "make_candidate": "nasblocks.search.candidate",
    "DataHandle": "nasblocks.search.trial",
    "TrialOutcome": "nasblocks.search.trial",
    "run_trial": "nasblocks.search.trial",
    "RegularizedEvolutionSampler": "nasblocks.search.evolution",
    "LocalSearchSampler": "nasblocks.search.local_search",
    "SearchOutcome": "nasblocks.search.engine",
    "search": "nasblocks.search.engine",
    "load_study": "nasblocks.search.results",
    "write_outputs": "nasblocks.search.results",
    "write_report": "nasblocks.search.report",
}

if TYPE_CHECKING:
    from nasblocks.search.candidate import Candidate, Infeasible, make_candidate
    from nasblocks.search.engine import SearchOutcome, search
    from nasblocks.search.evolution import RegularizedEvolutionSampler
    from nasblocks.search.local_search import LocalSearchSampler
    from nasblocks.search.report import write_report
    from nasblocks.search.results import load_study, write_outputs
    from nasblocks.search.trial import DataHandle, TrialOutcome, run_trial


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nasblocks.search' has no attribute {name!r}")
