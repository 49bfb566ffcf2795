"""Which data a run uses, as a small picklable value: :class:`DataHandle`.

A handle travels to worker processes and Ray actors instead of the tensors; each process loads
(and resizes) the data once and caches it. Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nasblocks.space.settings import DataSettings
    from nasblocks.train.data import DatasetSplits


@dataclasses.dataclass(frozen=True)
class DataHandle:
    """Which data a trial uses: small, picklable, loaded once per process (then cached).

    A handle travels to worker processes and Ray actors instead of the tensors.
    """

    dataset: str = "digits"
    root: str | None = None
    download: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    synthetic_size: int = 2000
    synthetic_shape: tuple[int, int, int] = (3, 32, 32)
    synthetic_classes: int = 10
    train_per_class: int | None = None

    @classmethod
    def from_settings(cls, data: DataSettings, seed: int) -> DataHandle:
        return cls(
            dataset=data.dataset,
            root=data.root,
            download=data.download,
            seed=seed,
            val_fraction=data.val_fraction,
            synthetic_size=data.synthetic_size,
            synthetic_shape=tuple(data.synthetic_shape),  # type: ignore[arg-type]
            synthetic_classes=data.synthetic_classes,
            train_per_class=data.train_per_class,
        )

    def load(self) -> DatasetSplits:
        """The raw splits (cached per process)."""
        splits = _LOADED.get(self)
        if splits is None:
            from nasblocks.train import load_dataset

            kwargs: dict[str, Any] = {
                "seed": self.seed,
                "val_fraction": self.val_fraction,
                "download": self.download,
                "train_per_class": self.train_per_class,
            }
            if self.dataset == "synthetic":
                kwargs.update(
                    synthetic_size=self.synthetic_size,
                    synthetic_shape=self.synthetic_shape,
                    synthetic_classes=self.synthetic_classes,
                )
            splits = load_dataset(self.dataset, self.root, **kwargs)
            _LOADED.clear()  # one dataset per process at a time
            _PREPARED.clear()
            _LOADED[self] = splits
        return splits

    def prepared(self, input_shape: tuple[int, int, int], device: Any = None) -> DatasetSplits:
        """Splits resized and normalised for a model's input (a few shapes cached)."""
        key = (self, tuple(input_shape), str(device))
        splits = _PREPARED.get(key)
        if splits is None:
            from nasblocks.train import prepare

            splits = prepare(self.load(), input_shape, device=device)
            _PREPARED[key] = splits
            while len(_PREPARED) > 4:
                _PREPARED.popitem(last=False)
        else:
            _PREPARED.move_to_end(key)
        return splits

    def info(self) -> tuple[tuple[int, int, int], int]:
        """``(input_shape, num_classes)`` of the dataset as stored."""
        splits = self.load()
        return tuple(splits.input_shape), splits.num_classes  # type: ignore[return-value]


_LOADED: dict[DataHandle, DatasetSplits] = {}
_PREPARED: OrderedDict[tuple, DatasetSplits] = OrderedDict()
