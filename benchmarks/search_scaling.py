"""Search scaling: trials per hour with 1 and 2 worker processes, and the framework's per-trial
overhead against the trial's own training.

Two measurements, each with ``--workers 1`` and ``--workers 2``, every run a fresh
``nasblocks search`` command (torch one thread per worker, digits at 8x8, one fixed small
ResNet whose learning rate is searched, so all trials cost the same and none is a duplicate):

1. **throughput**: trials of a few seconds; trials per hour over the trials' own window (first
   start to last end) and end to end (the whole command: start-up, trials, report).
   Target: 2 workers >= 1.7x one worker on a 2-core machine.
2. **overhead**: trials of about 10 s; per trial, Optuna's wall time (start -> complete)
   minus the training loop's own time (``fit``: training steps + per-epoch validation), plus
   the time since the same process ended its previous trial. What remains is the framework:
   admission, sampling, spec validation, params/FLOPs, building the model, storage writes,
   per-epoch reports, weight saving, callbacks. Each process's first trial also pays one-time
   imports and warm-up; it is reported apart. Target: under 2% of fit.

    .venv/bin/python benchmarks/search_scaling.py [--quick]

The script is also the runner of those commands (``search_scaling.py run ...``): it wraps
``run_trial`` to record ``fit_s``, and worker processes, started from this file, do the same.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

SPACE = """
name: {name}
stem: {{out_channels: {width}, kernel_size: 3, stride: 1, pool: none}}
stages: {{block: basic, layers: [1, 1], widths: [{width}, {width2}]}}
search:
  data: {{dataset: digits}}
  train: {{batch_size: 64, lr: {{float: [0.01, 0.2], log: true}}, device: cpu}}
  budget: {{trials: {trials}, epochs: {epochs}}}
  sampler: random
  pruner: none
  threads: 1
"""


def _record_fit_time() -> None:
    """Wrap the trial function so that each trial stores its training loop's own time."""
    from nasblocks.search import engine

    real = engine.run_trial

    def timed(spec, config, data, report=None, *, keep_weights=True):
        outcome = real(spec, config, data, report, keep_weights=keep_weights)
        outcome.metrics["fit_s"] = outcome.result.total_time_s
        return outcome

    engine.run_trial = timed


if len(sys.argv) > 1 and sys.argv[1] == "run" or __name__ == "__mp_main__":
    _record_fit_time()  # the command, and its worker processes (spawn imports this file)


@dataclass
class Run:
    workers: int
    trials: int
    wall_s: float  # the whole command
    window_s: float  # first trial start -> last trial end
    overhead_s: list[float]  # per trial after each process's first: wall - fit + gap
    gap_s: list[float]  # from the end of a process's previous trial to this one's start
    fit_s: list[float]
    first_extra_s: list[float]  # each process's first trial: wall - fit
    load: tuple[float, float]  # 1-minute load average before and after

    @property
    def per_hour(self) -> float:
        return self.trials * 3600 / self.window_s

    @property
    def per_hour_end_to_end(self) -> float:
        return self.trials * 3600 / self.wall_s

    @property
    def overhead_share(self) -> float:
        return statistics.median(o / f for o, f in zip(self.overhead_s, self.fit_s, strict=True))


def measure(root: Path, name: str, workers: int, trials: int, epochs: int, width: int) -> Run:
    space = root / f"{name}.yaml"
    text = SPACE.format(name=name, trials=trials, epochs=epochs, width=width, width2=2 * width)
    space.write_text(textwrap.dedent(text).lstrip())
    out = root / f"{name}-out"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "run", str(space), "--out", str(out), "-q"]
        + ["--workers", str(workers)],
        check=True,
    )
    wall = time.perf_counter() - start
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == trials, f"{len(done)} of {trials} trials completed"
    window = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    last_end: dict[str, datetime.datetime] = {}  # per worker process
    overhead, gaps, fit, first = [], [], [], []
    for t in sorted(done, key=lambda t: t.datetime_start):
        spent = (t.datetime_complete - t.datetime_start).total_seconds()
        extra = spent - t.user_attrs["fit_s"]
        worker = t.user_attrs["worker"]
        if worker in last_end:  # the time since its previous trial is framework time too
            gap = (t.datetime_start - last_end[worker]).total_seconds()
            overhead.append(extra + gap)
            gaps.append(gap)
            fit.append(t.user_attrs["fit_s"])
        else:
            first.append(extra)
        last_end[worker] = t.datetime_complete
    return Run(
        workers,
        trials,
        wall,
        window.total_seconds(),
        overhead,
        gaps,
        fit,
        first,
        (load_before, os.getloadavg()[0]),
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    python = sys.version.split()[0]
    return f"{model}, nproc {os.cpu_count()}, torch {torch.__version__}, Python {python}"


def table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{title}")
    print(f"  {'':34} {'1 worker':>12} {'2 workers':>12} {'2w / 1w':>9}")
    for label, one, two, ratio in rows:
        print(f"  {label:34} {one:>12} {two:>12} {ratio:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="throughput: trials per worker")
    parser.add_argument("--epochs", type=int, default=12, help="throughput: epochs per trial")
    parser.add_argument("--overhead-trials", type=int, default=4, help="trials per worker")
    parser.add_argument("--overhead-epochs", type=int, default=26, help="~10 s trials")
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.overhead_trials, args.overhead_epochs = 2, 2, 2, 4
    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fast = [
            measure(root, f"fast{n}", n, args.trials * n, args.epochs, width=16) for n in (1, 2)
        ]
        slow = [
            measure(root, f"slow{n}", n, args.overhead_trials * n, args.overhead_epochs, 32)
            for n in (1, 2)
        ]
    one, two = fast
    table(
        f"throughput: {args.epochs}-epoch trials, "
        f"{args.trials} per worker, 1 torch thread per worker",
        [
            (
                "trial time, median (s)",
                f"{statistics.median(one.fit_s):.2f}",
                f"{statistics.median(two.fit_s):.2f}",
                "",
            ),
            (
                "trials/hour (trial window)",
                f"{one.per_hour:.0f}",
                f"{two.per_hour:.0f}",
                f"{two.per_hour / one.per_hour:.2f}x",
            ),
            (
                "trials/hour (whole command)",
                f"{one.per_hour_end_to_end:.0f}",
                f"{two.per_hour_end_to_end:.0f}",
                f"{two.per_hour_end_to_end / one.per_hour_end_to_end:.2f}x",
            ),
            (
                "load average (before -> after)",
                *(f"{r.load[0]:.2f}->{r.load[1]:.2f}" for r in fast),
                "",
            ),
        ],
    )
    rows = []
    for runs in (fast, slow):
        a, b = runs
        label = f"{statistics.median(a.fit_s):.0f} s trials"
        rows += [
            (
                f"{label}: fit time, median (s)",
                f"{statistics.median(a.fit_s):.2f}",
                f"{statistics.median(b.fit_s):.2f}",
                "",
            ),
            (
                f"{label}: between trials (ms)",
                f"{1e3 * statistics.median(a.gap_s):.0f}",
                f"{1e3 * statistics.median(b.gap_s):.0f}",
                "",
            ),
            (
                f"{label}: overhead, median (ms)",
                f"{1e3 * statistics.median(a.overhead_s):.0f}",
                f"{1e3 * statistics.median(b.overhead_s):.0f}",
                "",
            ),
            (
                f"{label}: overhead / fit",
                f"{100 * a.overhead_share:.2f}%",
                f"{100 * b.overhead_share:.2f}%",
                "",
            ),
        ]
    rows.append(
        (
            "first trial of a process: extra (s)",
            f"{statistics.median(slow[0].first_extra_s):.2f}",
            f"{statistics.median(slow[1].first_extra_s):.2f}",
            "",
        )
    )
    table(
        "framework overhead per trial (wall - fit + time since the process's previous trial), "
        "each process's first trial apart",
        rows,
    )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"benchmark time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        from nasblocks.cli.main import main as cli

        sys.exit(cli(["search", *sys.argv[2:]]))
    main()
