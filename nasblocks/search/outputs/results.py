"""The files a search leaves in OUT, all derived from the study (so they can be rebuilt).

``trials.csv`` (one row per trial), ``best.yaml`` + ``best.pt`` (the best trial's concrete,
buildable spec and trained weights), ``pareto/trial_<n>.yaml`` for several objectives,
``run.json`` (which study, where it lives, the space's fingerprint: :mod:`.folder`),
``trials/<study>-<n>.pt`` (weights, pruned to the best / the Pareto front as the search goes;
named by study, so that no study deletes another's). Trial data lives in the trials' user
attributes; every path there and in ``run.json`` is relative to OUT, and every file is
written atomically (:func:`nasblocks.files.write_atomic`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from nasblocks.errors import SearchError
from nasblocks.files import OutputError, reason, write_atomic, write_csv
from nasblocks.search import outcomes
from nasblocks.search.backends.storage import open_storage
from nasblocks.search.evaluators.trained import evaluate_weights
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.outputs import folder as run_folder
from nasblocks.spec.yamlio import dump_spec

if TYPE_CHECKING:
    from nasblocks.space import SearchSpace
    from nasblocks.train import DataHandle

RUN_FILE = run_folder.RUN_FILE
WEIGHTS_DIR = "trials"
LAYOUT = 2  # run.json, weights: 1 had absolute storage paths and trials/<n>.pt


# -- the study and its best trials -----------------------------------------------------------


def objective_names(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives")
    return (
        list(names)
        if names
        else ["val_acc"] + [f"objective_{i}" for i in range(1, len(study.directions))]
    )


def tie_key(params: float | None, number: int | None) -> tuple[float, float]:
    """Of trials with equal objectives the best has fewer parameters, then the lower number
    (trials of parallel workers end out of order)."""
    return (math.inf if params is None else params, math.inf if number is None else number)


def _tie_key(t: FrozenTrial) -> tuple[float, float]:
    return tie_key(t.user_attrs.get("n_params"), t.number)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """Single objective: Optuna's best (feasible) trial; of equals, the one with fewer
    parameters, then the lowest-numbered (:func:`tie_key`). Several: the most accurate of the
    Pareto front."""
    try:
        if len(study.directions) == 1:
            best = study.best_trial
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            ties = [t for t in done if t.values == best.values and outcomes.feasible(t)]
            return min(ties, key=_tie_key, default=best)
        front = study.best_trials
    except ValueError:
        return None
    if not front:
        return None
    acc = objective_names(study).index("val_acc") if "val_acc" in objective_names(study) else 0
    return max(front, key=lambda t: (t.values[acc], -t.number))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front, one trial per architecture + settings (duplicates dropped)."""
    if len(study.directions) == 1:
        return []
    out, seen = [], set()
    for t in sorted(study.best_trials, key=lambda t: t.number):
        key = t.user_attrs.get("trial_key", t.number)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def worth_keeping(
    study: optuna.Study,
    values: list[float],
    number: int | None = None,
    params: float | None = None,
) -> bool:
    """Would trial ``number`` with ``values`` (and ``params`` parameters) be the best (or on the
    Pareto front) so far? (Of equals, :func:`tie_key` decides, as :func:`best_trial` does.)"""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    done = [t for t in done if outcomes.feasible(t)]
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    mine = [s * v for s, v in zip(signs, values, strict=True)]
    for t in done:
        theirs = [s * v for s, v in zip(signs, t.values, strict=True)]
        if len(values) == 1:
            before = _tie_key(t) < tie_key(params, number)
            if theirs[0] > mine[0] or (theirs[0] == mine[0] and before):
                return False
        elif all(a >= b for a, b in zip(theirs, mine, strict=True)) and theirs != mine:
            return False
    return True


# -- weights ---------------------------------------------------------------------------------


def weights_file(study_name: str, number: int) -> str:
    """``trials/<study>-<number>.pt``, relative to OUT (the study name made file-safe)."""
    return f"{WEIGHTS_DIR}/{_file_safe(study_name)}-{number}.pt"


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "study"


def save_weights(out: Path, study_name: str, number: int, state_dict: dict[str, Any]) -> str:
    """Write the weights of trial ``number`` atomically; return their path relative to OUT."""
    import torch

    name = weights_file(study_name, number)
    (out / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    write_atomic(out / name, lambda tmp: torch.save(state_dict, tmp))
    return name


def prune_weights(study: optuna.Study, out: Path) -> None:
    """Delete this study's weights of finished trials no longer best / on the front.

    Only files named for this study are touched: another study's, and ``trials/<n>.pt`` of
    folders from before weights were named by study, are left alone.
    """
    folder = out / WEIGHTS_DIR
    if not folder.is_dir():
        return
    # Finished trials first: one that finishes meanwhile (another worker) is left alone below.
    finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    keep_trials = pareto_trials(study) or [t for t in [best_trial(study)] if t is not None]
    keep = {t.user_attrs.get("weights") for t in keep_trials}
    mine = re.compile(rf"{re.escape(_file_safe(study.study_name))}-(\d+)\.pt")
    for path in folder.glob("*.pt"):
        match = mine.fullmatch(path.name)
        if match is None or int(match.group(1)) not in finished:
            continue  # not ours, or a running trial's weights
        if f"{WEIGHTS_DIR}/{path.name}" not in keep:
            path.unlink(missing_ok=True)


# -- files -----------------------------------------------------------------------------------


def write_run_file(
    out: Path, space: SearchSpace, storage: str, study_name: str, data: DataHandle
) -> None:
    """``run.json``: what `nasblocks report OUT` needs to find the study again, with paths
    relative to OUT (``storage``: a URL; ``sqlite:///study.db`` means OUT/study.db)."""
    import dataclasses

    info = {
        "layout": LAYOUT,
        "space": space.file,
        "space_name": space.name,
        "storage": run_folder.storage_in_file(out, storage),
        "study_name": study_name,
        "fingerprint": run_folder.fingerprint(space),
        "files": {
            "best_spec": "best.yaml",
            "best_weights": "best.pt",
            "trials": "trials.csv",
            "report": "report.md",
            "weights": f"{WEIGHTS_DIR}/",
        },
        "data": dataclasses.asdict(data),
        "settings": space.settings.model_dump(mode="json"),
    }
    write_atomic(out / RUN_FILE, json.dumps(info, indent=2) + "\n")
    write_atomic(
        out / "space.yaml",
        f"# The search space as run (after --set overrides), from {space.file}\n"
        + yaml.safe_dump(space.raw, sort_keys=False),
    )


def read_run_file(out: Path) -> dict[str, Any]:
    """``run.json`` of OUT, its ``storage`` resolved for where OUT is now."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise SearchError(f"{out}: no {RUN_FILE} here; is this a search output folder?")
    try:
        run = json.loads(path.read_text())
    except OSError as e:
        raise OutputError(f"cannot read {path}: {reason(e)}", e.errno) from None
    except ValueError:
        raise SearchError(f"{path}: not valid JSON; is this a search output folder?") from None
    if not isinstance(run, dict) or not {"storage", "study_name"} <= run.keys():
        raise SearchError(f"{path}: not a search's {RUN_FILE} (no storage or study_name)")
    run["storage"] = run_folder.resolve_storage(Path(out), str(run["storage"]))
    return run


def load_study(out: Path) -> optuna.Study:
    """The study of a search output folder (read from its run.json)."""
    run = read_run_file(out)
    url = run["storage"]
    db = run_folder.study_file(url)
    if db is not None:
        if not db.is_file():  # opening it would create an empty database there
            raise SearchError(f"{out}: the study database {db} is missing")
        run_folder.check_database(db, Path(out), url)
    with quiet_optuna():
        try:
            return optuna.load_study(study_name=run["study_name"], storage=open_storage(url))
        except KeyError as e:
            raise SearchError(f"study {run['study_name']!r} not found in {url}") from e


def status(t: FrozenTrial, retry_reason: str | None = None) -> str:
    """One readable word or phrase for how a trial ended. ``retry_reason``: what its retry
    says ended it (a trial failed from outside, its process dead, carries no reason itself)."""
    a = t.user_attrs
    how = outcomes.kind(t)
    if how == "duplicate":
        pruned = " (pruned)" if t.state == TrialState.PRUNED else ""
        return f"duplicate of {a['duplicate_of']}{pruned}"
    if how in ("infeasible", "diverged"):
        return f"{how}: {a[how]}"
    if how == "pruned":
        return f"pruned at epoch {a.get('pruned_at', '?')}"
    if how == "failed":
        why = "interrupted" if a.get("interrupted") else t.system_attrs.get("fail_reason")
        return f"failed: {a.get('error', why or retry_reason or 'unknown')}"
    return "ok" if how == "complete" else how


def retry_reasons(trials: list[FrozenTrial]) -> dict[int, str]:
    """Trial number -> why it ended, as its retry records it (``retry_reason``)."""
    return {
        t.user_attrs["retry_of"]: t.user_attrs["retry_reason"]
        for t in trials
        if "retry_of" in t.user_attrs and "retry_reason" in t.user_attrs
    }


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, status, objectives and costs, duration, hash, and
    every sampled parameter (under its YAML-path name)."""
    names = objective_names(study)
    fixed = [
        "number",
        "state",
        "status",
        "val_acc",
        "n_params",
        "flops",
        "latency_ms",
        "epochs",
        "duration_s",
        "spec_hash",
    ]
    rows = []
    trials = study.get_trials(deepcopy=False)
    why = retry_reasons(trials)
    for t in trials:
        a = t.user_attrs
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "status": status(t, why.get(t.number)),
        }
        for name in names:
            if name not in ("val_acc", "params", "flops", "latency_ms"):
                row[name] = t.values[names.index(name)] if t.values else None
        row["val_acc"] = a.get("val_acc")
        row["n_params"] = a.get("n_params")
        row["flops"] = a.get("flops")
        row["latency_ms"] = a.get("latency_ms")
        row["epochs"] = a.get("epochs")
        if t.datetime_start and t.datetime_complete:
            row["duration_s"] = round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
        row["spec_hash"] = a.get("spec_hash")
        if a.get("report_metric") is not None and a["report_metric"] != a.get("metric"):
            row[f"reported:{a['report_metric']}"] = a.get("report_value")  # a table search
        for key, value in t.params.items():
            row[key if key not in fixed else f"param:{key}"] = value
        rows.append(row)
    return rows


def write_trials_csv(study: optuna.Study, path: Path) -> list[dict[str, Any]]:
    rows = trial_rows(study)
    write_csv(rows, path)
    return rows


def spec_yaml(t: FrozenTrial, header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return "\n".join(lines) + "\n" + dump_spec(t.user_attrs["spec"])


def describe(t: FrozenTrial) -> str:
    a = t.user_attrs
    parts = [f"trial {t.number}"]
    if a.get("val_acc") is not None:  # a table search's score is its metric (test_acc ...)
        parts.append(f"{a.get('metric', 'val_acc')} {a['val_acc']:.4f}")
    if a.get("n_params") is not None:
        parts.append(f"{a['n_params']:,} params")
    if a.get("flops") is not None:
        from nasblocks.analysis import human

        parts.append(f"{human(a['flops'])} FLOPs")
    if a.get("latency_ms") is not None:
        parts.append(f"{a['latency_ms']:.2f} ms")
    return ", ".join(parts)


def write_outputs(study: optuna.Study, out: Path) -> FrozenTrial | None:
    """trials.csv, best.yaml + best.pt, pareto/*.yaml; returns the best trial."""
    out.mkdir(parents=True, exist_ok=True)
    write_trials_csv(study, out / "trials.csv")
    best = best_trial(study)
    if best is None:
        return None
    dataset = study.user_attrs.get("dataset", "digits")
    epochs = best.user_attrs.get("train", {}).get("epochs", 3)
    header = (
        f"Best architecture of study {study.study_name!r}: {describe(best)}\n"
        f"Train it again: nasblocks train best.yaml --dataset {dataset} "
        f"--epochs {epochs}"
    )
    write_atomic(out / "best.yaml", spec_yaml(best, header))
    weights = best.user_attrs.get("weights")
    if weights and (out / weights).is_file():
        write_atomic(out / "best.pt", lambda tmp: shutil.copyfile(out / weights, tmp))
    else:  # never leave an older trial's weights beside this best.yaml
        (out / "best.pt").unlink(missing_ok=True)
    front = pareto_trials(study)
    if front:
        folder = out / "pareto"
        folder.mkdir(exist_ok=True)
        names = {f"trial_{t.number}.yaml" for t in front}
        for t in front:
            text = spec_yaml(
                t,
                f"Pareto-optimal architecture: {describe(t)}\n"
                f"weights: {t.user_attrs.get('weights', 'not kept')}",
            )
            write_atomic(folder / f"trial_{t.number}.yaml", text)
        for old in folder.glob("*.yaml"):  # off the front now
            if old.name not in names:
                old.unlink(missing_ok=True)
        from nasblocks.search.outputs.pareto import write_pareto_csv

        write_pareto_csv(front, objective_names(study), out / "pareto.csv")
    return best


def evaluate_best(study: optuna.Study, out: Path, data: DataHandle) -> float | None:
    """Test accuracy of the best trial's weights (computed once per best trial, stored in the
    study's ``best_test`` user attribute)."""
    best = best_trial(study)
    if best is None or not (out / "best.pt").is_file():
        return None
    stored = study.user_attrs.get("best_test")
    if stored and stored.get("trial") == best.number:
        return stored.get("test_acc")
    import torch

    from nasblocks.train import TrainConfig

    config = TrainConfig.model_validate(best.user_attrs["train"])
    weights = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    scores = evaluate_weights(best.user_attrs["spec"], weights, config, data, "test")
    study.set_user_attr(
        "best_test",
        {
            "trial": best.number,
            "test_acc": scores["acc"],
            "test_loss": scores["loss"],
            "images": int(scores.get("images", 0)),
        },
    )
    return scores["acc"]
