"""The Optuna study of a search and its objective: the Optuna adapter of the trial pipeline.

:func:`open_study` creates or loads the study (the sampler seeded by the trials already run,
the pruner from the space); :class:`Objective` is what ``study.optimize`` calls, in this process
(:mod:`.engine`) and in each worker process (:mod:`.backends.workers`): Optuna's suggestions
-> sample -> :func:`.pipeline.evaluate` -> the result written on the trial
(:func:`.pipeline.record`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from nasblocks.errors import SearchError
from nasblocks.search import pipeline
from nasblocks.search.backends.storage import open_storage, public_url, storage_url, worker_id
from nasblocks.search.budget import FINISHED
from nasblocks.search.evaluators.table import TableError
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.pipeline import Job, TrialFailed
from nasblocks.search.samplers import OptunaSource, make_pruner, make_sampler
from nasblocks.space import SearchSpace
from nasblocks.space.nodes import Choice

if TYPE_CHECKING:
    from nasblocks.search.outputs.progress import Progress


def study_name(space: SearchSpace) -> str:
    return space.settings.study_name or space.name


def open_study(
    space: SearchSpace,
    out: Path,
    storage: str | None = None,
    *,
    heartbeat: int | None = None,
    seed: int | None = None,
) -> tuple[optuna.Study, str]:
    """Create or load the study; the sampler is seeded by seed + trials already run, so a
    resumed study does not replay the draws of its first run (``seed`` replaces the space's:
    each worker process draws differently)."""
    settings = space.settings
    url = storage_url(out, storage or settings.storage, table=settings.evaluate is not None)
    name = study_name(space)
    objectives = settings.directions()
    directions = [d for _, d in objectives]
    with quiet_optuna():
        study = optuna.create_study(
            storage=open_storage(url, heartbeat),
            study_name=name,
            directions=directions,
            load_if_exists=True,
        )
    have = [d.name.lower() for d in study.directions]
    stored = study.user_attrs.get("objectives")
    wanted = [m for m, _ in objectives]
    if have != directions or (stored is not None and stored != wanted):
        raise SearchError(
            f"study {name!r} in {url} optimises {stored or have}, this space asks for "
            f"{wanted} ({', '.join(directions)}); use another --out or study_name"
        )
    run_folder.check_study(study, space, public_url(url))
    if stored is None:
        study.set_user_attr("objectives", wanted)
        study.set_user_attr("space", space.file or space.name)
        study.set_user_attr("dataset", settings.data.dataset)
        if settings.evaluate is not None:
            study.set_user_attr("score", settings.evaluate.metric)
            study.set_user_attr("table", settings.evaluate.table)
    seed = (settings.seed if seed is None else seed) + len(study.get_trials(deepcopy=False))
    seed %= 2**32  # numpy's range, which Optuna's samplers seed
    study.sampler = make_sampler(space, seed)
    study.pruner = make_pruner(settings.pruner, max_epochs(space), settings.multi_objective)
    return study, url


def max_epochs(space: SearchSpace) -> int:
    epochs = space.train.get("epochs", space.settings.budget.epochs)
    if isinstance(epochs, int):
        return epochs
    if isinstance(epochs, Choice):
        return max(o for o in epochs.options if isinstance(o, int))
    return int(getattr(epochs, "high", space.settings.budget.epochs))


class Objective:
    """``study.optimize``'s objective: the Optuna adapter of :func:`.pipeline.evaluate`.

    The trial's sample comes from Optuna's suggestions; its result is written on the trial
    (:func:`.pipeline.record`), with the weights of a trained trial when they are worth
    keeping. What is known before training (spec, costs) is written first, so a running trial
    shows it in Optuna's dashboard."""

    def __init__(
        self,
        job: Job,
        out: Path,
        progress: Progress | None = None,
        on_start: Callable[[optuna.Trial], None] | None = None,
    ) -> None:
        self.job, self.out = job, out
        self.space, self.settings = job.space, job.space.settings
        self.progress = progress
        self.on_start = on_start

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr("worker", worker_id())
        if self.on_start is not None:
            self.on_start(trial)
        if self.progress is not None:
            self.progress.trial_started(trial.number)
        written: set[str] = set()

        def started(attrs: dict[str, Any]) -> None:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            written.update(attrs)

        try:
            result = pipeline.evaluate(
                self.space.sample(OptunaSource(trial)),
                self.job,
                self._reporter(trial),
                seen=lambda key: find_duplicate(trial.study, key, trial.number),
                started=started,
                fatal=lambda e: run_folder.environment_failure(e, self.out, "") is not None,
            )
            if (
                result.weights is not None
                and result.values is not None
                and results.worth_keeping(
                    trial.study, result.values, trial.number, result.attrs.get("n_params")
                )
            ):
                path = results.save_weights(
                    self.out, trial.study.study_name, trial.number, result.weights
                )
                result.attrs["weights"] = path
            return pipeline.record(trial, result, written)
        except (optuna.TrialPruned, TrialFailed):
            raise
        except TableError as e:  # the space and the table disagree: no result is honest
            trial.set_user_attr("error", str(e))
            raise SearchError(str(e)) from None
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as e:
            if run_folder.environment_failure(e, self.out, "") is None:
                # recording the result failed: the trial fails, the study goes on
                pipeline.record(trial, pipeline.failure(e))  # raises TrialFailed
            # a full disk, a read-only folder: the search stops; the trial is retried when it
            # resumes (if its end can be recorded at all)
            with contextlib.suppress(Exception):
                trial.set_user_attr("interrupted", True)
                trial.set_user_attr("error", f"stopped: {str(e).splitlines()[0][:300]}")
            raise

    def _reporter(self, trial: optuna.Trial) -> pipeline.Report:
        multi = self.settings.multi_objective
        prunes = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)

        def report(epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
            if self.progress is not None:
                self.progress.epoch(trial.number, epoch, epochs, metrics)
            if multi:  # Optuna prunes single-objective studies only
                return False
            trial.report(metrics["val_acc"], epoch)  # kept for plots and other processes
            # (asking a pruner costs a storage read: not when there is none)
            return prunes and epoch < epochs and trial.should_prune()  # the last is complete

        return report


def find_duplicate(study: optuna.Study, key: str, number: int) -> pipeline.Original | None:
    """A finished, trained trial with the same key (architecture + training settings)."""
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if t.number != number and t.user_attrs.get("trial_key") == key:
            original = pipeline.original_of(t)
            if original is not None:
                return original
    return None
