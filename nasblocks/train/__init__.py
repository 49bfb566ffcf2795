"""Data and training for trials: fixed dataset splits, and ``fit`` for any classifier.

A trial is ``fit(model, prepare(load_dataset(name), model_input_shape), config, report)``:
it trains in place, reports validation accuracy every epoch to ``report`` (which may stop it)
and returns a :class:`TrainResult`. The test split is scored apart with :func:`evaluate`.
"""

from nasblocks.train.config import AugmentConfig, TrainConfig
from nasblocks.train.data import (
    DATASETS,
    DatasetError,
    DatasetSplits,
    TensorData,
    load_dataset,
    prepare,
)
from nasblocks.train.trainer import (
    DivergedError,
    TrainingError,
    TrainOutOfMemoryError,
    TrainResult,
    evaluate,
    fit,
    train_one,
)

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "DatasetError",
    "DatasetSplits",
    "DivergedError",
    "TensorData",
    "TrainConfig",
    "TrainOutOfMemoryError",
    "TrainResult",
    "TrainingError",
    "evaluate",
    "fit",
    "load_dataset",
    "prepare",
    "train_one",
]
