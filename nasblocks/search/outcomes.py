"""How a trial ended, as every part of nasblocks reads it back from a study.

:class:`Status` is the pipeline's taxonomy (:mod:`nasblocks.search.pipeline`); :func:`kind`
reads it from a recorded Optuna trial, :func:`feasible` whether it met the constraints.
"""

from __future__ import annotations

import enum

from optuna.trial import FrozenTrial, TrialState


class Status(str, enum.Enum):
    """How a trial ended (see the module doc for how each is recorded)."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    INFEASIBLE = "infeasible"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def state(self) -> TrialState:
        """The Optuna state it is recorded as."""
        if self is Status.COMPLETE:
            return TrialState.COMPLETE
        return TrialState.FAIL if self is Status.FAILED else TrialState.PRUNED


def kind(t: FrozenTrial) -> str:
    """How a recorded trial ended: ``duplicate``, a :class:`Status` value, or the state of a
    trial that has not ended (``running``, ``waiting``)."""
    a = t.user_attrs
    if "duplicate_of" in a:
        return "duplicate"
    if t.state == TrialState.COMPLETE:
        return Status.COMPLETE.value
    if t.state == TrialState.PRUNED:
        for status in (Status.INFEASIBLE, Status.DIVERGED):
            if status.value in a:
                return status.value
        return Status.PRUNED.value
    if t.state == TrialState.FAIL:
        return Status.FAILED.value
    return t.state.name.lower()


def feasible(t: FrozenTrial) -> bool:
    """Whether ``t`` met every constraint (Optuna's convention: a constraint value <= 0)."""
    return all(v <= 0 for v in t.constraints.values())
