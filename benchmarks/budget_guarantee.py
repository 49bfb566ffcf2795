"""Does ``--workers N`` need its own admission lock, or does Optuna's ``MaxTrialsCallback`` stop
N processes at exactly the budget?

Both run the same budget of B trials of varying length (50-300 ms of sleep each, fixed by the
trial's parameters) with N processes on one SQLite study:

- ``nasblocks``: ``search(..., workers=N)`` (admission under ``OUT/workers.lock``: a trial
  starts only while finished + running < B);
- ``optuna``: N processes each calling ``study.optimize(objective,
  callbacks=[MaxTrialsCallback(B, states=...)])``, Optuna's documented recipe for a shared
  budget, with the default ``states=(COMPLETE,)`` and with ``states=None`` (running trials
  counted too).

Printed, per repeat: the trials the first run made (the budget is B) and, after a slash, the
trials the same command added when run again on the finished study (a resume: should be 0).

    .venv/bin/python benchmarks/budget_guarantee.py [--workers 2 4] [--budget 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import textwrap
import time
from pathlib import Path

SPACE = """
name: budget
stem: {out_channels: 8, kernel_size: 3, stride: 1, pool: none}
stages:
  block: basic
  layers: [1]
  widths: [8]
search:
  data: {dataset: synthetic, synthetic_size: 100, synthetic_shape: [3, 16, 16]}
  train: {batch_size: 32, lr: {float: [0.01, 0.2], log: true}, device: cpu}
  budget: {trials: 12, epochs: 1}
  sampler: random
  pruner: none
"""


def delay(lr: float) -> float:
    """50-300 ms, a fixed function of the drawn learning rate (same law for both runs)."""
    return 0.05 + (lr * 1e4 % 100) / 400


class SleepTrainer:
    """Trains nothing; sleeps as long as :func:`delay` says. Picklable for the workers."""

    def __call__(self, spec, config, data, report=None, *, keep_weights=True):
        from nasblocks.search.evaluators.trained import TrialOutcome

        time.sleep(delay(config.lr))
        if report is not None:
            report(1, {"val_acc": 0.5, "train_loss": 1.0})
        metrics = {"val_acc": 0.5, "train_loss": 1.0, "epochs": 1.0, "duration_s": 0.0}
        return TrialOutcome(metrics, False, None, None)


def ours(root: Path, workers: int, budget: int) -> tuple[int, int]:
    from nasblocks.search import search
    from nasblocks.search.outputs.results import load_study

    space = root / "budget.yaml"
    space.write_text(textwrap.dedent(SPACE).lstrip())
    out = root / "ours"
    settings = {"search.budget.trials": budget}
    counts = []
    for _ in range(2):  # the search, then the same command again (a resume)
        search(
            space,
            overrides=settings,
            out=out,
            workers=workers,
            progress=False,
            trainer=SleepTrainer(),
        )
        counts.append(len(load_study(out).trials))
    return counts[0], counts[1] - counts[0]


def _optuna_worker(url: str, budget: int, counted: str, seed: int) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    states = None if counted == "all" else (TrialState.COMPLETE,)
    study = optuna.load_study(
        study_name="budget", storage=url, sampler=optuna.samplers.RandomSampler(seed)
    )

    def objective(trial):
        time.sleep(delay(trial.suggest_float("train.lr", 0.01, 0.2, log=True)))
        return 0.5

    study.optimize(objective, callbacks=[MaxTrialsCallback(budget, states=states)])


def reference(root: Path, workers: int, budget: int, counted: str) -> tuple[int, int]:
    import optuna

    url = f"sqlite:///{root / f'optuna-{counted}.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="budget", storage=url, direction="maximize")
    ctx = multiprocessing.get_context("spawn")
    counts = []
    for again in range(2):
        procs = [
            ctx.Process(target=_optuna_worker, args=(url, budget, counted, 10 * again + seed))
            for seed in range(workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        counts.append(len(study.get_trials(deepcopy=False)))
    return counts[0], counts[1] - counts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"budget {args.budget} trials, 50-300 ms each; trials made / added by a rerun")
    print(f"{'N':>3}  {'nasblocks':>18}  {'MaxTrials(COMPLETE)':>20}  {'MaxTrials(all)':>18}")
    for n in args.workers:
        rows: dict[str, list[tuple[int, int]]] = {"ours": [], "complete": [], "all": []}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                rows["ours"].append(ours(root, n, args.budget))
                rows["complete"].append(reference(root, n, args.budget, "complete"))
                rows["all"].append(reference(root, n, args.budget, "all"))
        shown = {k: " ".join(f"{a}/{b}" for a, b in v) for k, v in rows.items()}
        print(f"{n:>3}  {shown['ours']:>18}  {shown['complete']:>20}  {shown['all']:>18}")


if __name__ == "__main__":
    main()
