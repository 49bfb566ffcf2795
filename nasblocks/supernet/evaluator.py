"""The supernet as a search's evaluator, beside training and the table.

A trial's score is its subnet's validation accuracy with inherited weights, after its batch
norm statistics are estimated on the same fixed training batches for every subnet (a fair
ranking: no subnet sees luckier batches). The weights returned are exactly what
``nasblocks.build(spec)`` loads, statistics included, so ``best.pt`` scores the recorded
accuracy again (``nasblocks train OUT --inherit --epochs 0``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from nasblocks.search.candidate import DataInfo
from nasblocks.space import Sample, SearchSpace
from nasblocks.supernet.network import Supernet, SupernetError
from nasblocks.supernet.training import CHECKPOINT, TrainedSupernet, train_config, val_subset


class Scorer:
    """Scores samples of one space with one trained supernet."""

    def __init__(self, net: Supernet, space: SearchSpace, data: Any, info: DataInfo) -> None:
        from nasblocks.train.batches import TrainBatches
        from nasblocks.train.trainer import resolve_device

        settings = space.settings.supernet
        assert settings is not None
        self.net, self.config = net, train_config(space)
        self.device = resolve_device(self.config.device)
        splits = data.prepared(info.input_shape, self.device)
        net.to(self.device)
        batches = TrainBatches(splits.train, self.config, self.device, channels_last=False)
        self.batches = list(itertools.islice(batches, settings.recalibration_batches))
        self.val = val_subset(splits.val, settings.val_images or len(splits.val))

    def score(self, sample: Sample) -> tuple[dict[str, float], dict[str, Any]]:
        """``({"val_acc", "val_loss", "scored_images", "threads"}, state_dict)`` of the
        sample's subnet (and ``grown_slots`` when it needed tensors the survey missed)."""
        import torch

        from nasblocks.train.trainer import evaluate

        net = self.net
        grown = net.grown
        net.growable = True  # no optimiser holds the tensors now
        try:
            sub = net.subnet(sample)
        finally:
            net.growable = False
        stats = net.recalibrate(sub, self.batches)
        net.activate(sub, stats)
        try:
            result = evaluate(net, self.val, self.config)
        finally:
            net.activate(None)
        weights = {k: v.cpu() for k, v in net.extract(sub, stats).items()}
        metrics = {
            "val_acc": result["acc"],
            "val_loss": result["loss"],
            "scored_images": len(self.val),
            "threads": torch.get_num_threads(),
        }
        if net.grown > grown:  # shapes the survey missed: part of these weights is untrained
            metrics["grown_slots"] = net.grown - grown
        return metrics, weights


_SCORERS: dict[str, Scorer] = {}


def register(path: Path, scorer: Scorer) -> None:
    """The scorer of the supernet saved at ``path`` in this process (no reload)."""
    _SCORERS[str(path)] = scorer


def scorer_for(path: str | Path, space: SearchSpace, data: Any, info: DataInfo) -> Scorer:
    """The scorer of the supernet checkpoint at ``path``, loaded once per process."""
    hit = _SCORERS.get(str(path))
    if hit is not None:
        return hit
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise SupernetError(f"{path}: cannot read the supernet: {e}") from None
    net = TrainedSupernet(space, info, slots=saved["slots"])
    net.load_state_dict(saved["model"])
    scorer = Scorer(net, space, data, info)
    _SCORERS[str(path)] = scorer
    return scorer


def checkpoint_path(out: Path) -> Path:
    return out / CHECKPOINT
