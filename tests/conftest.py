"""Shared pytest setup: slow tests run only with --runslow or NASBLOCKS_SLOW=1; GPU tests
only where CUDA exists. Torch uses one thread per test process (the CI machine has 2 cores)."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or os.environ.get("NASBLOCKS_SLOW") == "1"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow or NASBLOCKS_SLOW=1")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _imagefolder_cache(tmp_path_factory):
    """Decoded image folders are cached under a temporary folder, never the user's home."""
    previous = os.environ.get("NASBLOCKS_CACHE")
    os.environ["NASBLOCKS_CACHE"] = str(tmp_path_factory.mktemp("nasblocks-cache"))
    yield
    if previous is None:
        os.environ.pop("NASBLOCKS_CACHE", None)
    else:
        os.environ["NASBLOCKS_CACHE"] = previous


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:  # pragma: no cover
        pass
    yield


TINY_SPACE = """
name: tiny
stem: {out_channels: 4, kernel_size: 3, stride: 1, pool: none}
stages:
  block: basic
  layers: [1]
  widths: [{choice: [4, 8]}]
search:
  data: {dataset: synthetic, synthetic_size: 240, synthetic_shape: [1, 8, 8],
         synthetic_classes: 4}
  train: {batch_size: 32, lr: {float: [0.05, 0.2], log: true}, max_train_batches: 3,
          device: cpu}
  budget: {trials: TRIALS, epochs: EPOCHS}
  sampler: random
  pruner: none
"""


def _tiny_space(trials: int = 3, epochs: int = 2) -> str:
    return TINY_SPACE.lstrip().replace("TRIALS", str(trials)).replace("EPOCHS", str(epochs))


@pytest.fixture(scope="session")
def tiny_space_text():
    """``tiny_space_text(trials=3, epochs=2)`` -> the text of the tiny search space every search
    test runs: synthetic 1x8x8 images, a one-block net, a width choice and the lr searched."""
    return _tiny_space
