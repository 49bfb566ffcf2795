"""Data and training for trials: fixed dataset splits, and ``fit`` for any classifier.

A trial is ``fit(model, prepare(load_dataset(name), model_input_shape), config, report)``:
it trains in place, reports validation accuracy every epoch to ``report`` (which may stop it)
and returns a :class:`TrainResult`. The test split is scored apart with :func:`evaluate`.

The names below are imported on first use (PEP 562), so that :class:`DataHandle` and
:class:`TrainConfig` can be used by code that never trains without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AugmentConfig": "config",
    "TrainConfig": "config",
    "DataHandle": "handle",
    "DATASETS": "data",
    "DatasetError": "data",
    "DatasetSplits": "data",
    "TensorData": "data",
    "load_dataset": "data",
    "prepare": "data",
    "Bilevel": "trainer",
    "DivergedError": "trainer",
    "TrainingError": "trainer",
    "TrainOutOfMemoryError": "trainer",
    "TrainResult": "trainer",
    "build_model": "trainer",
    "evaluate": "trainer",
    "fit": "trainer",
    "fit_and_save": "trainer",
}

__all__ = [
    "AugmentConfig",
    "Bilevel",
    "DATASETS",
    "DataHandle",
    "DatasetError",
    "DatasetSplits",
    "DivergedError",
    "TensorData",
    "TrainConfig",
    "TrainOutOfMemoryError",
    "TrainResult",
    "TrainingError",
    "build_model",
    "evaluate",
    "fit",
    "fit_and_save",
    "load_dataset",
    "prepare",
]

if TYPE_CHECKING:
    from nasblocks.train.config import AugmentConfig, TrainConfig
    from nasblocks.train.data import (
        DATASETS,
        DatasetError,
        DatasetSplits,
        TensorData,
        load_dataset,
        prepare,
    )
    from nasblocks.train.handle import DataHandle
    from nasblocks.train.trainer import (
        Bilevel,
        DivergedError,
        TrainingError,
        TrainOutOfMemoryError,
        TrainResult,
        build_model,
        evaluate,
        fit,
        fit_and_save,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nasblocks.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nasblocks.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
