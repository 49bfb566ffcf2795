"""What a running search shows: a live line on a terminal, one log line per trial otherwise.

The live line is rewritten in place (``\\r``) every epoch::

    [ 7/20] best 0.9803 (#5) | trial 8 epoch 2/3 val_acc 0.912 | 1m12s elapsed, ETA 2m10s

Not on a terminal (CI logs, ``| tee``), each finished trial prints one line instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from nasblocks.search import outcomes
from nasblocks.search.budget import counts
from nasblocks.search.outputs.results import describe, status

if TYPE_CHECKING:
    import optuna

    from nasblocks.space import SearchSettings
    from nasblocks.train import DataHandle


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Optuna callback (after each trial) plus per-epoch updates from the objective."""

    def __init__(
        self,
        total: int,
        name: str,
        settings: SearchSettings,
        enabled: bool | None = None,
        stream: IO[str] | None = None,
        workers: int = 1,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled is not False
        self.live = bool(enabled is not False and _isatty(self.stream))
        self.total, self.name, self.settings = total, name, settings
        self.workers = workers
        self.start_time = self.trials_start = time.perf_counter()
        self.done_at_start = 0
        self.done = 0
        self.trained = 0  # trials of this run that trained (duplicates, infeasible ones: instant)
        self.best: tuple[float, int] | None = None
        self.current = ""
        self.maximize = settings.directions()[0][1] == "maximize"
        # what the score is called: val_acc, or the column a table search looks up
        self.score = settings.evaluate.metric if settings.evaluate is not None else "val_acc"

    # -- events ------------------------------------------------------------------------------
    def start(
        self,
        study: optuna.Study,
        data: DataHandle,
        out: Path | str | None = None,
        moved: Path | None = None,
    ) -> None:
        """The first lines: what was moved aside (``--fresh``), what is resumed, what runs."""
        self.start_time = self.trials_start = time.perf_counter()
        finished = [t for t in study.get_trials(deepcopy=False) if counts(t)]
        self.done_at_start = self.done = len(finished)
        for t in finished:
            self._track_best(t)
        s = self.settings
        where = f" in {out}" if out is not None else ""
        if moved is not None:
            self._print(f"fresh start: the previous study{where} is now in {moved}")
        if self.done >= self.total:
            self._print(
                f"resuming: {self.done} of {self.total} trials already finished{where}; "
                "--trials N to extend, --fresh to start over"
            )
            return
        if self.done:
            self._print(f"resuming: {self.done} of {self.total} trials finished{where}")
        workers = f", {self.workers} workers" if self.workers > 1 else ""
        on = data.dataset
        if s.evaluate is not None:
            on = f"table {Path(s.evaluate.table).name} ({s.evaluate.metric})"
        self._print(
            f"search {self.name}: {self.total} trials on {on}, "
            f"sampler {s.sampler.name}, pruner {s.pruner.name}, "
            f"objectives {', '.join(self._named(m) for m, _ in s.directions())}{workers}"
        )

    def _named(self, metric: str) -> str:
        return self.score if metric == "val_acc" else metric

    def trials_began(self) -> None:
        """Trials start now (a supernet trained before them): the ETA counts from here."""
        self.trials_start = time.perf_counter()

    def note(self, line: str) -> None:
        """One line of news (the warm-up's summary ...), between the trial lines."""
        self._print(line)

    def trial_started(self, number: int) -> None:
        self.current = f"trial {number} starting"
        self._refresh()

    def epoch(
        self, number: int, epoch: int, epochs: int | None, metrics: dict[str, float]
    ) -> None:
        of = f"/{epochs}" if epochs else ""
        self.current = f"trial {number} epoch {epoch}{of} val_acc {metrics['val_acc']:.3f}"
        self._refresh()

    def running(self, trials: list[FrozenTrial]) -> None:
        """The trials other processes are running, from their stored per-epoch values."""
        parts = []
        for t in trials:
            if not t.intermediate_values:
                parts.append(f"trial {t.number} running")
                continue
            epoch = max(t.intermediate_values)
            epochs = t.user_attrs.get("train", {}).get("epochs")
            of = f"/{epochs}" if epochs else ""
            value = t.intermediate_values[epoch]
            parts.append(f"trial {t.number} epoch {epoch}{of} val_acc {value:.3f}")
        self.current = ", ".join(parts)
        self._refresh()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if counts(trial):
            self.done += 1
        if trial.user_attrs.get("duration_s"):
            self.trained += 1
        before = self.best
        self._track_best(trial)
        self.current = ""
        if self.settings.evaluate is not None and self.best == before and self.done % 50:
            self._refresh()  # a table search logs new bests and every 50th lookup
            return
        a = trial.user_attrs
        acc = f" {self.score} {a['val_acc']:.4f}" if a.get("val_acc") is not None else ""
        size = f" params {a['n_params']:,}" if a.get("n_params") is not None else ""
        secs = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else 0.0
        )
        self._print(
            f"[{self.done:>{len(str(self.total))}}/{self.total}] trial {trial.number} "
            f"{status(trial)}{acc}{size} ({secs:.1f}s) | {self._best_text()} | "
            f"{self._time_text()}"
        )

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def summary(self, outcome: Any, best: FrozenTrial | None) -> None:
        if not self.enabled:
            return
        ran = outcome.finished - self.done_at_start
        lines = []
        if ran > 0:  # none: the resuming line said so
            total = f" ({outcome.finished} in the study)" if self.done_at_start else ""
            trials = "trial" if ran == 1 else "trials"
            lines.append(f"finished {ran} {trials} in {fmt_time(outcome.elapsed_s)}{total}")
        if best is not None:
            lines.append(f"best: {describe(best)}")
        if outcome.test_acc is not None:
            lines.append(f"{outcome.test_metric} of the best: {outcome.test_acc:.4f}")
        lines.append(f"results: {outcome.out}/report.md, {outcome.out}/best.yaml")
        for line in lines:
            self._print(line)

    # -- text --------------------------------------------------------------------------------
    def _track_best(self, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE or trial.values is None:
            return
        if not outcomes.feasible(trial):
            return
        value = trial.values[0]
        if self.best is None or (value > self.best[0] if self.maximize else value < self.best[0]):
            self.best = (value, trial.number)

    def _best_text(self) -> str:
        if self.best is None:
            return "best -"
        return f"best {self.best[0]:.4f} (#{self.best[1]})"

    def _time_text(self) -> str:
        elapsed = time.perf_counter() - self.start_time
        ran = self.done - self.done_at_start
        left = max(0, self.total - self.done)
        # Instant trials (duplicates, infeasible samples) say nothing of a trained one's cost:
        # no estimate until one has trained, unless every trial is a table lookup.
        known = ran and (self.trained or self.settings.evaluate is not None)
        per_trial = (time.perf_counter() - self.trials_start) / ran if ran else 0.0
        eta = fmt_time(per_trial * left) if known else "?"
        return f"{fmt_time(elapsed)} elapsed, ETA {eta}"

    def _refresh(self) -> None:
        if not self.live:
            return
        width = len(str(self.total))
        parts = [f"[{self.done:>{width}}/{self.total}]", self._best_text()]
        if self.current:
            parts.append(self.current)
        parts.append(self._time_text())
        self.stream.write("\r\033[K" + " | ".join(parts))
        self.stream.flush()

    def _print(self, line: str) -> None:
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.live:
            self._refresh()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
