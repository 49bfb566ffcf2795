"""Does ``nasblocks.train.fit`` cost anything over a hand-written PyTorch loop?

Both train copies of one small conv net on the same batches (same permutation of the same
in-memory tensors), with the same SGD settings, no augmentation and no mixed precision, and
are timed alternately so drifting machine load hits both alike. The primary number is the
median over repeats of fit's training throughput divided by the hand loop's (target >= 0.97);
the best-of ratio (fastest run of each, the least disturbed by other load) backs it up, and
the end-to-end ratio also charges fit for its setup and its per-epoch validation pass.
Repeats stop early once ``--budget-s`` is spent, so a busy machine still finishes in time.

    .venv/bin/python benchmarks/trainer_overhead.py [--threads 2] [--repeats 15]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from nasblocks.train import DatasetSplits, TensorData, TrainConfig, fit


def small_convnet(classes: int = 10) -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 16, 1),
        *block(16, 32, 2),
        *block(32, 32, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


def hand_loop(model: nn.Module, data: TensorData, config: TrainConfig, steps: int) -> float:
    """The loop everyone writes; returns training images per second."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(data), generator=generator)[: steps * config.batch_size]
    for index in order.view(steps, config.batch_size):
        x, y = data.images[index], data.labels[index]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=15, help="timed pairs of runs, at most")
    parser.add_argument("--budget-s", type=float, default=90.0, help="stop repeating after")
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    n = args.steps * args.batch_size + 64  # + 64: the permutation really has to choose

    def split(size: int) -> TensorData:
        images = torch.randn(size, 3, 32, 32, generator=generator)
        return TensorData(images, torch.randint(0, 10, (size,), generator=generator))

    splits = DatasetSplits(
        name="bench",
        train=split(n),
        val=split(128),
        test=split(128),
        num_classes=10,
        input_shape=(3, 32, 32),
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
    )
    config = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        lr=0.05,
        schedule="constant",
        amp="off",
        channels_last=False,
        device="cpu",
        max_train_batches=args.steps,
    )
    torch.manual_seed(0)
    initial = small_convnet()

    def run_fit() -> tuple[float, float, nn.Module]:
        model = copy.deepcopy(initial)
        start = time.perf_counter()
        result = fit(model, splits, config)
        return (
            result.images_per_s,
            args.steps * args.batch_size / (time.perf_counter() - start),
            model,
        )

    def run_hand() -> tuple[float, float, nn.Module]:
        model = copy.deepcopy(initial)
        start = time.perf_counter()
        speed = hand_loop(model, splits.train, config, args.steps)
        return speed, args.steps * args.batch_size / (time.perf_counter() - start), model

    # Warm up both (lazy imports, allocator, kernels) and check they did the same work.
    _, _, fitted = run_fit()
    _, _, handmade = run_hand()
    same = all(
        torch.equal(a, b) for a, b in zip(fitted.parameters(), handmade.parameters(), strict=True)
    )
    print(
        f"threads={args.threads} batch={args.batch_size} steps={args.steps}; "
        f"identical weights after training: {same}"
    )

    ratios, wall_ratios, fit_speeds, hand_speeds = [], [], [], []
    began = time.perf_counter()
    for repeat in range(args.repeats):
        if repeat >= 3 and time.perf_counter() - began > args.budget_s:
            break
        pair = (run_fit, run_hand) if repeat % 2 == 0 else (run_hand, run_fit)
        outcome = {f: f() for f in pair}
        (fit_speed, fit_wall, _), (hand_speed, hand_wall, _) = outcome[run_fit], outcome[run_hand]
        ratios.append(fit_speed / hand_speed)
        wall_ratios.append(fit_wall / hand_wall)
        fit_speeds.append(fit_speed)
        hand_speeds.append(hand_speed)
        print(
            f"  repeat {repeat}: fit {fit_speed:7.1f} img/s  hand {hand_speed:7.1f} img/s  "
            f"ratio {ratios[-1]:.3f}  end-to-end {wall_ratios[-1]:.3f}"
        )
    print(
        f"median fit {statistics.median(fit_speeds):.1f} img/s, "
        f"hand {statistics.median(hand_speeds):.1f} img/s"
    )
    print(f"median throughput ratio fit/hand: {statistics.median(ratios):.3f} (target >= 0.97)")
    print(f"best-of throughput ratio fit/hand: {max(fit_speeds) / max(hand_speeds):.3f}")
    print(
        f"median end-to-end ratio (setup + validation included): "
        f"{statistics.median(wall_ratios):.3f}"
    )


if __name__ == "__main__":
    main()
