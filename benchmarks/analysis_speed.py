"""Parameters and MACs without building: analytic costs against counting the built network.

For each network: ``load_spec`` (parse + shape plan, the floor), ``analysis.count`` (the
blocks' analytic costs; blocks without one counted alone on the meta device, cached),
``analysis.summary`` (per-layer rows), and ``analysis.measure`` (the whole network built on
the meta device and run under ``FlopCounterMode``: how counting worked before). Median of
``--repeats`` runs each, side by side in one process; the ratio column is count / load_spec.
The counting caches are cleared before each ``count`` run, so it is a cold count.

    .venv/bin/python benchmarks/analysis_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time

NETS = ["resnet50", "resnet18", "se_resnet50", "mobilenet_v2", "googlenet", "resnet_like"]


def resnet_like():
    from nasblocks.search.candidate import DataInfo, complete_spec
    from nasblocks.space import RandomSource, load_space

    space = load_space("search_spaces/resnet_like.yaml")
    for seed in range(100):
        spec = space.sample(RandomSource(seed)).spec
        if spec["stages"]["block"] == "bottleneck":
            return complete_spec(spec, DataInfo((1, 8, 8), 10), space.settings)
    raise RuntimeError("no bottleneck sample")


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from nasblocks import analysis
    from nasblocks.spec import load_spec

    print(
        "| network | load_spec ms | count ms | summary ms | measure (built) ms "
        "| count / load_spec |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in NETS:
        source = resnet_like() if name == "resnet_like" else name
        analysis.measure(load_spec(source))  # warm torch up once

        def cold_count(source=source):
            analysis._MEASURED.clear()
            analysis.count(load_spec(source))

        def cold_summary(source=source):
            analysis._MEASURED.clear()
            analysis.summary(source)

        load = timed(lambda source=source: load_spec(source), args.repeats)
        count = timed(cold_count, args.repeats)
        summ = timed(cold_summary, args.repeats)
        built = timed(lambda source=source: analysis.measure(load_spec(source)), args.repeats)
        print(
            f"| {name} | {load:.1f} | {count:.1f} | {summ:.1f} | {built:.1f} "
            f"| {count / load:.1f}x |"
        )


if __name__ == "__main__":
    main()
