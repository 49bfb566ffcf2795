"""What counts towards a search's budget, and when a search stops early.

A trial counts when it was evaluated (complete or pruned, :data:`FINISHED`); samples found
infeasible before training are recorded (PRUNED) but do not count. :class:`Stopper` ends a
study on the budget, after :data:`MAX_FAILS_IN_A_ROW` failures in a row, or when the space has
yielded nothing evaluable for :data:`MAX_INFEASIBLE_IN_A_ROW` samples. Shared by every backend.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILS_IN_A_ROW = 5
MAX_INFEASIBLE_IN_A_ROW = 200  # samples in a row that cannot be evaluated: the space is empty


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards the budget: evaluated ones (complete or pruned); samples
    found infeasible before training are recorded (PRUNED) but do not count."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards the budget (see :func:`count_finished`)."""
    return trial.state in FINISHED and "infeasible" not in trial.user_attrs


class Stopper:
    """Stops the study when ``target`` trials have finished, or after repeated failures.

    As a callback it counts the trials it sees end after the ``finished`` it is given at the
    start (a study only this process writes to: no need to read every trial each time)."""

    def __init__(self, target: int, finished: int = 0) -> None:
        self.target = target
        self.finished = finished
        self.fails = 0
        self.infeasible = 0
        self.error: str | None = None

    def count(self, trial: FrozenTrial) -> str | None:
        """Count one ended trial; the reason to stop when too many failed in a row, or when
        the space has yielded nothing that can be evaluated for a long while."""
        self.fails = self.fails + 1 if trial.state == TrialState.FAIL else 0
        reason = trial.user_attrs.get("infeasible")
        self.infeasible = self.infeasible + 1 if reason is not None else 0
        if self.fails >= MAX_FAILS_IN_A_ROW:
            self.error = (
                f"{self.fails} trials in a row failed; the last one: "
                f"{trial.user_attrs.get('error', 'unknown error')}"
            )
        elif self.infeasible >= MAX_INFEASIBLE_IN_A_ROW:
            self.error = (
                f"{self.infeasible} samples in a row were infeasible (the last: {reason}); "
                "the space yields nothing that can be evaluated: loosen the constraints or "
                "fix the space"
            )
        return self.error

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.finished += counts(trial)
        if self.count(trial) is not None or self.finished >= self.target:
            study.stop()
