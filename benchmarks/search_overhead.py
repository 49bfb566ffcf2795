"""Per-trial framework overhead of ``nasblocks search``, against the trial's own work.

A trial's wall time (Optuna's start -> complete) is split into the trial function
(:func:`nasblocks.search.trial.run_trial`: build + train + validate) and everything around it:
sampling, spec validation, params/FLOPs on the meta device, dedup lookup, storage writes,
per-epoch reports, weight saving. Run twice: with real (small) training, and with a no-op
trial function that isolates the framework's fixed cost.

    .venv/bin/python benchmarks/search_overhead.py [--trials 6] [--epochs 1] [--size 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

SPACE = """
name: overhead
stem: {{out_channels: 16, kernel_size: 3, stride: 1, pool: none}}
stages:
  block: {{choice: [basic, bottleneck]}}
  layers: [{{int: [1, 2]}}, {{int: [1, 2]}}]
  widths: [{{choice: [16, 32]}}, {{choice: [32, 64]}}]
search:
  data: {{dataset: synthetic, synthetic_size: {size}, synthetic_shape: [3, 32, 32]}}
  train: {{batch_size: 64, lr: {{float: [0.02, 0.2], log: true}}, device: cpu}}
  budget: {{trials: {trials}, epochs: {epochs}}}
  sampler: random
  pruner: none
"""


def measure(space_file: Path, out: Path, noop: bool) -> list[tuple[float, float]]:
    """``[(trial wall s, trial function s), ...]`` for trained (non-duplicate) trials."""
    from nasblocks.search import engine
    from nasblocks.search.results import load_study
    from nasblocks.space import load_space

    real = engine.run_trial
    if noop:
        from nasblocks.search.trial import TrialOutcome

        def instant(spec, config, data, report=None, *, keep_weights=True):
            start = time.perf_counter()
            for epoch in range(1, config.epochs + 1):
                report(epoch, {"val_acc": 0.5, "train_loss": 1.0})
            metrics = {
                "val_acc": 0.5,
                "epochs": float(config.epochs),
                "duration_s": time.perf_counter() - start,
            }
            return TrialOutcome(metrics, False, None, None)

        engine.run_trial = instant
    try:
        engine.search(load_space(space_file), out=out, progress=False)
    finally:
        engine.run_trial = real
    rows = []
    for t in load_study(out).trials:
        if t.state.name != "COMPLETE" or "duplicate_of" in t.user_attrs:
            continue
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append((wall, t.user_attrs["duration_s"]))  # run_trial's own span
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--size", type=int, default=1000, help="synthetic images")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        space = root / "space.yaml"
        space.write_text(textwrap.dedent(SPACE.format(**vars(args))).lstrip())
        for noop in (True, False):
            rows = measure(space, root / ("noop" if noop else "real"), noop)
            over = [w - f for w, f in rows]
            label = "no-op trial function" if noop else "real training"
            print(f"\n{label}: {len(rows)} trials")
            print(f"  trial wall time    median {statistics.median(w for w, _ in rows):8.3f} s")
            print(f"  trial function     median {statistics.median(f for _, f in rows):8.3f} s")
            print(
                f"  framework overhead median {1e3 * statistics.median(over):8.1f} ms"
                + (
                    ""
                    if noop
                    else f"  ({100 * sum(over) / sum(w for w, _ in rows):.2f} % "
                    "of trial wall time)"
                )
            )


if __name__ == "__main__":
    main()
