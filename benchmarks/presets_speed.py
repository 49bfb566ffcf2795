"""Forward+backward time of built presets against torchvision's or timm's modules, same weights.

A preset compiles to the same computation as the reference network (torchvision's when it
has one by that name, else timm's: ``--nets resnet50d seresnet50 skresnet18``), so the ratio
of the two times should be 1 within noise (target: median <= 1.02). The two are timed in
alternation, pair after pair, in a random order within each pair, so drifts of a shared
machine (frequency, other processes) hit both alike. Each sample is the fastest of
``--inner`` consecutive steps (interference only ever adds time); the median of the per-pair
ratios is printed, with its quartiles and the ratio of the two overall fastest steps.

    python benchmarks/presets_speed.py                      # CPU, batch 2, 128x128
    python benchmarks/presets_speed.py --nets resnet50 --repeats 50 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

import nasblocks

DEFAULT_NETS = ("resnet18", "resnet50", "mobilenet_v2", "googlenet")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(out: torch.Tensor | tuple) -> torch.Tensor:
    """Sum of every output (GoogLeNet's aux heads too), so backward covers all of them."""
    outs = out if isinstance(out, tuple) else (out,)
    return sum(o.float().square().mean() for o in outs)  # type: ignore[return-value]


def _step(
    model: nn.Module, x: torch.Tensor, device: torch.device, inner: int
) -> Callable[[], float]:
    def run() -> float:
        best = float("inf")
        for _ in range(inner):
            model.zero_grad(set_to_none=True)
            _sync(device)
            start = time.perf_counter()
            _loss(model(x)).backward()
            _sync(device)
            best = min(best, time.perf_counter() - start)
        return best

    return run


def references(name: str) -> list[nn.Module]:
    """torchvision's network of that name, then timm's (random init), whichever exist."""
    found = []
    if hasattr(torchvision.models, name):
        kwargs = {"init_weights": True} if name in ("googlenet", "inception_v3") else {}
        found.append(getattr(torchvision.models, name)(**kwargs))
    import timm

    if timm.is_model(name):
        found.append(timm.create_model(name))
    return found


def pair(name: str, size: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(reference, ours) with the same weights: the first reference whose state dict loads
    strictly (torchvision's and timm's efficientnet_b0 differ; the preset is timm's)."""
    ours = nasblocks.build(name, input_size=size)
    for theirs in references(name):
        try:
            ours.load_state_dict(theirs.state_dict(), strict=True)
        except RuntimeError:
            continue
        return theirs.to(device).train(), ours.to(device).train()
    raise SystemExit(f"{name}: neither torchvision nor timm has a network whose weights fit")


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    size = max(args.size, 299) if name == "inception_v3" else args.size
    theirs, ours = pair(name, size, device)
    x = torch.randn(args.batch, 3, size, size, device=device)
    runs = {
        "reference": _step(theirs, x, device, args.inner),
        "nasblocks": _step(ours, x, device, args.inner),
    }
    for _ in range(args.warmup):
        for run in runs.values():
            run()
    rng = random.Random(0)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        order = list(runs)
        rng.shuffle(order)
        for key in order:
            times[key].append(runs[key]())
    ratios = [o / t for o, t in zip(times["nasblocks"], times["reference"], strict=True)]
    return {
        "reference_ms": 1e3 * statistics.median(times["reference"]),
        "nasblocks_ms": 1e3 * statistics.median(times["nasblocks"]),
        "ratio": statistics.median(ratios),
        "q1": statistics.quantiles(ratios, n=4)[0],
        "q3": statistics.quantiles(ratios, n=4)[2],
        "best": min(times["nasblocks"]) / min(times["reference"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(DEFAULT_NETS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--inner", type=int, default=3, help="steps per sample (fastest kept)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"# torch {torch.__version__}, torchvision {torchvision.__version__}, {device} "
        f"({where or platform.machine()}), {torch.get_num_threads()} threads, "
        f"batch {args.batch}x3x{args.size}x{args.size}, train-mode forward+backward, "
        f"{args.repeats} alternating pairs of best-of-{args.inner}"
    )
    print(f"{'net':<20}{'reference ms':>15}{'nasblocks ms':>14}{'ratio':>8}  (q1-q3)  best/best")
    for name in args.nets:
        r = measure(name, args, device)
        print(
            f"{name:<20}{r['reference_ms']:>15.2f}{r['nasblocks_ms']:>14.2f}"
            f"{r['ratio']:>8.3f}  ({r['q1']:.3f}-{r['q3']:.3f})  {r['best']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
