"""What one supernet training step costs against the largest subnet trained alone.

The NAS-Bench-201 supernet (search_spaces/nas_bench_201_oneshot.yaml) and the largest cell
of its space (every edge nor_conv_3x3, built by ``nasblocks.build``), both trained by hand
with the same SGD step on the same random 32x32 batches, timed in alternating pairs so that
machine load hits both alike. Three supernet paths: the largest subnet every step (the cost
of weight sharing alone: meta build, slicing, ``functional_call``), uniform single-path
draws (SPOS, what training does; most draws are smaller than the largest) and the sandwich
rule (four paths a step). Printed: median per-step time ratios against the largest alone,
and the memory of the weights (and of the peak activations on CUDA).

    .venv/bin/python benchmarks/supernet_cost.py [--pairs 20] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nasblocks
from nasblocks.search.candidate import DataInfo
from nasblocks.space import FixedSource, load_space
from nasblocks.supernet.training import Paths, TrainedSupernet

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "nas_bench_201_oneshot.yaml"
EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")


def step(model, optimizer, x, y, paths: int = 1) -> None:
    optimizer.zero_grad(set_to_none=True)
    for _ in range(paths):
        (F.cross_entropy(model(x), y) / paths).backward()
    optimizer.step()


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = load_space(SPACE)
    info = DataInfo((3, 32, 32), 10)
    largest = space.sample(FixedSource(dict.fromkeys(EDGES, "nor_conv_3x3")))
    torch.manual_seed(0)
    net = TrainedSupernet(space, info, discovery=50).to(device).train()
    alone = nasblocks.build(net.subnet(largest).spec).to(device).train()
    opt_net = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    opt_alone = torch.optim.SGD(alone.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    spos, sandwich = Paths(space, 0, "spos"), Paths(space, 0, "sandwich")
    modes = {
        "largest path": (lambda: largest, 1),
        "spos (uniform single path)": (spos, 1),
        "sandwich (4 paths a step)": (sandwich, 4),
    }
    for _ in range(3):  # warm-up: allocator, caches, the largest subnet's build
        step(alone, opt_alone, x, y)
        net.path = modes["largest path"][0]
        step(net, opt_net, x, y)
    print(
        f"NAS-Bench-201 supernet vs its largest cell alone: batch {args.batch}, 32x32, "
        f"{device}, {torch.get_num_threads()} threads, {args.pairs} pairs"
    )
    for name, (path, paths) in modes.items():
        net.path = path
        ratios, ours, theirs = [], [], []
        for i in range(args.pairs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            t = [0.0, 0.0]
            for j in order:
                if j == 0:
                    t[0] = timed(lambda k=paths: step(net, opt_net, x, y, k), device)
                else:
                    t[1] = timed(lambda: step(alone, opt_alone, x, y), device)
            ratios.append(t[0] / t[1])
            ours.append(t[0])
            theirs.append(t[1])
        print(
            f"  {name:28s} step {statistics.median(ours) * 1e3:7.1f} ms vs "
            f"{statistics.median(theirs) * 1e3:7.1f} ms alone: median ratio "
            f"{statistics.median(ratios):.3f}"
        )
    mb = 4 / 2**20
    print(
        f"  weights: supernet {sum(p.numel() for p in net.parameters()) * mb:.1f} MiB, "
        f"largest alone {sum(p.numel() for p in alone.parameters()) * mb:.1f} MiB"
    )
    if device.type == "cuda":
        for name, model, opt in (("supernet", net, opt_net), ("alone", alone, opt_alone)):
            if model is net:
                net.path = modes["largest path"][0]
            torch.cuda.reset_peak_memory_stats(device)
            step(model, opt, x, y)
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            print(f"  peak memory of a step, {name}: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
