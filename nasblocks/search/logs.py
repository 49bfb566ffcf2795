"""Optuna's logging while nasblocks runs a study."""

from __future__ import annotations

from contextlib import contextmanager

import optuna


@contextmanager
def quiet_optuna():
    """nasblocks prints its own progress; Optuna's per-trial INFO/WARNING lines would
    duplicate it (the reasons are in the trials' user attributes)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
