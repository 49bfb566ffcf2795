"""fit(..., checkpoint=): the training state after every finished epoch; a run resumes from
it, a NaN keeps the last good one, another run's is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasblocks.train import DivergedError, TrainConfig, fit
from nasblocks.train.checkpoint import Checkpoint, CheckpointError
from nasblocks.train.data import DatasetSplits, TensorData


def splits(n: int = 96) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    part = TensorData(images, labels)
    return DatasetSplits("toy", part, part, part, 3, (1, 4, 4), ("a", "b", "c"))


class Net(nn.Module):
    def __init__(self, nan_from_call: int | None = None) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 3)
        self.calls, self.nan_from = 0, nan_from_call

    def forward(self, x):
        out = self.fc(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.nan_from is not None and self.calls >= self.nan_from:
                return out * float("nan")
        return out


CONFIG = dict(batch_size=32, lr=0.1, device="cpu", augment={"flip": True})


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    torch.manual_seed(0)
    whole = Net()
    fit(whole, splits(), TrainConfig(epochs=4, **CONFIG))
    torch.manual_seed(0)
    part = Net()
    ckpt = Checkpoint(tmp_path / "c.pt", {"run": "x"})

    class Stop(Exception):
        pass

    def stop(epoch, metrics):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(part, splits(), TrainConfig(epochs=4, **CONFIG), stop, checkpoint=ckpt)
    assert ckpt.load()["epoch"] == 2
    again = Net()  # other initial weights: all of it comes from the checkpoint
    result = fit(again, splits(), TrainConfig(epochs=4, **CONFIG), checkpoint=ckpt)
    assert result.epochs_run == 4 and len(result.history) == 4
    torch.testing.assert_close(again.fc.weight, whole.fc.weight, rtol=0, atol=0)


def test_nan_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = Checkpoint(tmp_path / "c.pt")
    with pytest.raises(DivergedError) as e:
        fit(Net(nan_from_call=4), splits(), TrainConfig(epochs=3, **CONFIG), checkpoint=ckpt)
    assert e.value.epoch == 2  # 3 steps an epoch: the 4th call is in epoch 2
    assert ckpt.load()["epoch"] == 1


def test_another_runs_checkpoint_is_refused(tmp_path):
    Checkpoint(tmp_path / "c.pt", {"space": "a"}).save({"epoch": 1})
    with pytest.raises(CheckpointError, match="belongs to another run"):
        Checkpoint(tmp_path / "c.pt", {"space": "b"}).load()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        Checkpoint(tmp_path / "bad.pt").load()
