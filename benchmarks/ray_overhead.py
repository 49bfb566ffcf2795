"""Ray Tune's own per-trial overhead in ``nasblocks search --backend ray``.

Trials run one at a time (``max_concurrent=1``) on a local Ray, so the time of ``Tuner.fit``
splits exactly into the time inside the trial function (``ray_trial.trainable``: its first line
to its last report) and the time outside it: Ray's scheduling, result handling, searcher
calls, experiment-state snapshots, and the worker's start for the first trial.

- Ray's steady per-trial cost: the gap between one trial's last report and the next trial's
  first line, plus the time a trial waits inside ``tune.report`` for its per-epoch results
  (Tune reports synchronously; the trial records it as ``ray_report_s``).
- Once per search: the first gap (starting the worker process), Ray's start-up, and the
  driver's work outside ``Tuner.fit`` (loading the data, checking the space, converting the
  results to the Optuna study, writing the outputs, the test score of the best, the report).
- Inside the function, what is not ``run_trial`` is nasblocks' own work in the worker
  (sampling, validation, params/FLOPs, saving the weights as a Ray checkpoint).

    .venv/bin/python benchmarks/ray_overhead.py [--trials 10] [--epochs 2] [--batches 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

SPACE = """
name: ray_overhead
stem: {{out_channels: 8, kernel_size: 3, stride: 1, pool: none}}
stages:
  block: {{choice: [basic, bottleneck]}}
  layers: [{{int: [1, 2]}}]
  widths: [{{choice: [8, 16]}}]
search:
  data: {{dataset: digits}}
  train: {{batch_size: 32, lr: {{float: [0.02, 0.2], log: true}}, max_train_batches: {batches},
          device: cpu}}
  budget: {{trials: {trials}, epochs: {epochs}}}
  sampler: random
  pruner: none
  threads: 1
"""


def run(trials: int, epochs: int, batches: int) -> dict[str, float]:
    import ray

    from nasblocks.search.backends import ray_backend
    from nasblocks.search.outputs.results import load_study

    fits: list[tuple[float, float]] = []  # (start, end) of each Tuner.fit, wall clock
    real_fit = ray_backend._Rounds._fit

    def timed_fit(self, tuner):
        start = time.time()
        real_fit(self, tuner)
        fits.append((start, time.time()))

    ray_backend._Rounds._fit = timed_fit
    folder = Path(tempfile.mkdtemp(prefix="ray_overhead_"))
    space = folder / "space.yaml"
    space.write_text(textwrap.dedent(SPACE.format(trials=trials, epochs=epochs, batches=batches)))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    try:
        started = time.time()
        ray_backend.search_ray(space, out=folder / "out", max_concurrent=1, progress=False)
        ended = time.time()
    finally:
        ray.shutdown()
        ray_backend._Rounds._fit = real_fit
    study = load_study(folder / "out")
    spans = sorted(
        (t.datetime_start.timestamp(), t.datetime_complete.timestamp(), t.user_attrs)
        for t in study.trials
    )
    shutil.rmtree(folder)
    ((fit_start, fit_end),) = fits
    inside = [end - start for start, end, _ in spans]
    run_trial = [a.get("duration_s", 0.0) for _, _, a in spans]
    gaps = [spans[0][0] - fit_start]
    gaps += [spans[i][0] - spans[i - 1][1] for i in range(1, len(spans))]
    tail = fit_end - spans[-1][1]
    fit = fit_end - fit_start
    n = len(spans)
    return {
        "trials": n,
        "ray_start_s": ray_start,
        "fit_s": fit,
        "inside_mean_s": statistics.mean(inside),
        "run_trial_mean_s": statistics.mean(run_trial),
        "worker_extra_mean_s": statistics.mean(inside) - statistics.mean(run_trial),
        "report_mean_s": statistics.mean(a.get("ray_report_s", 0.0) for _, _, a in spans),
        "first_gap_s": gaps[0],
        "gap_median_s": statistics.median(gaps[1:]),
        "gap_max_s": max(gaps[1:]),
        "tail_s": tail,
        "outside_per_trial_s": (fit - sum(inside)) / n,
        "driver_before_s": fit_start - started,
        "driver_after_s": ended - fit_end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20, help="max_train_batches per epoch")
    args = parser.parse_args()
    r = run(args.trials, args.epochs, args.batches)
    import ray
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{r['trials']} trials one at a time, {args.epochs} epochs x {args.batches} batches; "
        f"Tuner.fit {r['fit_s']:.2f} s"
    )
    print(f"  inside the trial function:  {r['inside_mean_s']:.3f} s per trial (mean)")
    print(f"    of which run_trial:       {r['run_trial_mean_s']:.3f} s")
    print(f"    nasblocks in the worker:  {r['worker_extra_mean_s']:.3f} s (outside run_trial)")
    print(f"    waiting in tune.report:   {r['report_mean_s']:.3f} s (Ray, per-epoch results)")
    print(f"  Ray, outside the function:  {r['outside_per_trial_s']:.3f} s per trial (mean)")
    print(
        f"    between trials:           {r['gap_median_s']:.3f} s median, {r['gap_max_s']:.3f} max"
    )
    print(f"    before the first trial:   {r['first_gap_s']:.3f} s (worker start)")
    print(f"    after the last trial:     {r['tail_s']:.3f} s")
    steady = r["gap_median_s"] + r["report_mean_s"]
    print(f"  Ray's steady per-trial cost (between trials + in tune.report): {steady:.3f} s,")
    print(f"    {steady / 10:.1%} of a 10 s trial")
    print(f"  once per search: Ray start {r['ray_start_s']:.2f} s")
    before, after = r["driver_before_s"], r["driver_after_s"]
    print(f"    driver before Tuner.fit:  {before:.2f} s (data, space check, searcher)")
    print(f"    driver after Tuner.fit:   {after:.2f} s (study, outputs, test score, report)")


if __name__ == "__main__":
    main()
