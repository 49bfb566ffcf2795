"""Resumable training: the whole training state after each finished epoch, in one file.

:func:`nasblocks.train.fit` with ``checkpoint=Checkpoint(path)`` writes the model, optimiser,
schedule, gradient scaler, data order and augmentation generators and the history after every
epoch whose loss was finite, whole or not at all (a temporary file renamed into place), and
starts from it when it exists: a run killed at any moment resumes from its last finished
epoch. ``meta`` is stored beside the state and must match on resume (what the run was: a
checkpoint of other settings is refused, never silently continued).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nasblocks.errors import NasBlocksError
from nasblocks.files import write_atomic


class CheckpointError(NasBlocksError):
    """A checkpoint that cannot be read, or that belongs to another run."""


class Checkpoint:
    """Where a run's training state goes, and what it must match to be resumed."""

    def __init__(
        self,
        path: str | Path,
        meta: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.meta = dict(meta or {})
        self.extra = dict(extra or {})  # saved beside the state (what rebuilds the model)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet; refuses another run's."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise CheckpointError(f"{self.path}: cannot read the checkpoint: {e}") from None
        if not isinstance(state, dict) or "epoch" not in state:
            raise CheckpointError(f"{self.path}: not a nasblocks training checkpoint")
        saved = state.get("meta", {})
        for key, value in self.meta.items():
            if saved.get(key) != value:
                raise CheckpointError(
                    f"{self.path}: the checkpoint belongs to another run (its {key} differs "
                    "from this run's); use another output folder"
                )
        return state

    def save(self, state: dict[str, Any]) -> None:
        state = {**state, **self.extra, "meta": self.meta}
        write_atomic(self.path, lambda tmp: torch.save(state, tmp))
