"""``OUT/report.md`` with PNG plots, rebuilt from the study alone (`nasblocks report OUT`).

Plots use matplotlib's object API on the Agg canvas (no pyplot, no display, no global
backend switch): optimization history, accuracy against parameters, the Pareto front for
several objectives, and parameter importances (Optuna's fANOVA; skipped, with the reason,
when fewer than two trials completed or no parameter varies).
"""

from __future__ import annotations

import collections
import json
import math
import re
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasblocks.files import write_atomic
from nasblocks.search import outcomes
from nasblocks.search.logs import quiet_optuna
from nasblocks.search.outputs import results
from nasblocks.search.outputs.progress import fmt_time
from nasblocks.search.outputs.report_supernet import supernet_section

TOP = 10


def write_report(study: optuna.Study, out: Path) -> Path:
    """Write ``report.md`` and its PNGs into ``out``; return the report's path."""
    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    names = results.objective_names(study)
    acc_index = names.index("val_acc") if "val_acc" in names else 0
    complete = [t for t in trials if t.state == TrialState.COMPLETE and outcomes.feasible(t)]
    best = results.best_trial(study)
    front = results.pareto_trials(study)
    run = _run_info(out)
    plots: list[tuple[str, str]] = []
    notes: list[str] = []
    score = _score_label(study)
    if _plot_history(trials, acc_index, out / "history.png", score):
        plots.append(("Optimization history", "history.png"))
    if _plot_acc_params(complete, best, front, out / "acc_vs_params.png"):
        plots.append((f"{score.capitalize()} against parameters", "acc_vs_params.png"))
    if front and _plot_pareto(complete, front, names, acc_index, out / "pareto.png"):
        plots.append(("Pareto front", "pareto.png"))
    importances, why = param_importances(study, acc_index)
    based = min(len(complete), MAX_IMPORTANCE_TRIALS)
    if importances and _plot_importances(importances, out / "importances.png"):
        title = f"Parameter importances (fANOVA, {score}, over {based} completed trials)"
        plots.append((title, "importances.png"))
    elif why:
        notes.append(f"Parameter importances: not computed — {why}.")

    lines = [f"# Search report: {study.study_name}", ""]
    lines += _overview(study, trials, run)
    lines += _best_section(study, best, out, run)
    lines += _architecture(best)
    lines += supernet_section(out, _save, _figure)
    for title, file in plots:
        lines += [f"## {title}", "", f"![{title}]({file})", ""]
    lines += notes + ([""] if notes else [])
    lines += _top_table(complete, acc_index, study.user_attrs.get("score", "val_acc"))
    if front:
        lines += [
            "## Pareto front",
            "",
            f"{len(front)} architectures, one file each in `pareto/`, all in `pareto.csv`:",
            "",
        ]
        lines += _hypervolume(study, complete, front, run)
        lines += _table(front, [f"pareto/trial_{t.number}.yaml" for t in front])
    if importances:
        lines += [
            "## Parameter importances",
            "",
            f"fANOVA over {based} completed trials (Optuna's `FanovaImportanceEvaluator`).",
            "",
            "| parameter | importance |",
            "|---|---:|",
        ]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in importances.items()] + [""]
    lines += _problems(trials)
    storage = run.get("storage", "")
    lines += [
        "## Reproduce",
        "",
        f"- Regenerate this report: `nasblocks report {out}`",
        f"- Browse the study: `optuna-dashboard {storage}`" if storage else "",
        f"- Train the best again: `nasblocks train {out}/best.yaml --dataset "
        f"{study.user_attrs.get('dataset', 'digits')}`",
        "",
    ]
    path = out / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


# -- text ------------------------------------------------------------------------------------


def _overview(study: optuna.Study, trials: list[FrozenTrial], run: dict) -> list[str]:
    settings = run.get("settings", {})
    counts = collections.Counter(_kind(t) for t in trials)
    starts = [t.datetime_start for t in trials if t.datetime_start and t.datetime_complete]
    ends = [t.datetime_complete for t in trials if t.datetime_start and t.datetime_complete]
    wall = ""
    if starts and ends:
        begin, end = min(d for d in starts if d), max(d for d in ends if d)
        wall = f", {fmt_time((end - begin).total_seconds())} from first start to last finish"
    score = study.user_attrs.get("score", "val_acc")  # a table search's metric
    directions = ", ".join(
        f"{score if n == 'val_acc' else n} ({d.name.lower()})"
        for n, d in zip(results.objective_names(study), study.directions, strict=True)
    )
    table = study.user_attrs.get("table")
    data = f"Data: {study.user_attrs.get('dataset', '?')}"
    if table is not None:
        data = f"Evaluation: `{score}` looked up in `{table}` (no training)"
        report = (settings.get("evaluate") or {}).get("report") or {}
        if report:
            data += (
                f"; reported for the best: `{report['metric']}` of "
                f"`{report.get('table') or table}` (the search never saw it)"
            )
    out = [
        f"- Space: `{run.get('space') or study.user_attrs.get('space', '?')}`",
        f"- {data}",
        f"- Objectives: {directions}",
    ]
    if settings:
        epochs = "" if table else f", {settings['budget']['epochs']} epochs per trial"
        out.append(
            f"- Sampler: {settings['sampler']['name']}, pruner: "
            f"{settings['pruner']['name']}, seed {settings['seed']}{epochs}"
        )
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out += [f"- Trials: {len(trials)} ({kinds}){wall}", ""]
    return out


def _table_lines(run: dict, a: dict) -> list[str]:
    """A table search's best: its key, the value searched and the value reported."""
    lines = [f"- Table key: `{a['table_key']}`"]
    evaluate = (run.get("settings") or {}).get("evaluate") or {}
    searched = f"{a.get('metric', 'the metric')} {a['val_acc']:.4f}"
    if a.get("table_run") is not None:
        searched += f" (its training run {a['table_run'] + 1}, by seed)"
    if a.get("report_value") is not None:
        report = evaluate.get("report") or {}
        where = Path(report.get("table") or evaluate.get("table") or "the table").name
        lines.append(
            f"- Reported: {a['report_metric']} **{a['report_value']:.4f}** ({where}, the mean "
            f"over its runs); the search saw {searched}"
        )
    return lines


def _best_section(
    study: optuna.Study, best: FrozenTrial | None, out: Path, run: dict
) -> list[str]:
    if best is None:
        return ["## Best architecture", "", "No trial completed yet.", ""]
    a = best.user_attrs
    lines = ["## Best architecture", "", f"**{results.describe(best)}**", ""]
    test = study.user_attrs.get("best_test")
    if test and test.get("trial") == best.number:
        lines.append(
            f"- Test accuracy: **{test['test_acc']:.4f}** "
            f"({test.get('images', '?')} held-out test images, scored once)"
        )
    elif a.get("table_key") is not None:
        lines += _table_lines(run, a)
    else:
        lines.append("- Test accuracy: not evaluated for this trial")
    weights = "`best.pt`" if (out / "best.pt").is_file() else "not kept"
    lines += [
        f"- Spec: `best.yaml` (buildable: `nasblocks.build('{out}/best.yaml')`), "
        f"weights: {weights}",
    ]
    if a.get("spec_hash"):
        lines.append(f"- Spec hash: `{a['spec_hash']}`")
    if a.get("duplicate_of") is not None:
        lines.append(f"- Same architecture and settings as trial {a['duplicate_of']}")
    train = a.get("train", {})
    if train:
        keys = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule")
        lines.append("- Training: " + ", ".join(f"{k} {train[k]}" for k in keys if k in train))
    lines += ["", "| parameter | value |", "|---|---|"]
    lines += [f"| `{k}` | {_short(v)} |" for k, v in best.params.items()] + [""]
    return lines


def _hypervolume(
    study: optuna.Study, complete: list[FrozenTrial], front: list[FrozenTrial], run: dict
) -> list[str]:
    """The front's hypervolume and the reference point it is measured from."""
    from nasblocks.search.outputs.pareto import hypervolume, reference_point

    names = results.objective_names(study)
    directions = [d.name.lower() for d in study.directions]
    given = (run.get("settings") or {}).get("reference_point")
    point, how = reference_point(complete, names, given)
    volume = hypervolume([t.values for t in front], point, directions)
    where = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, point, strict=True))
    return [
        f"Hypervolume of the front: **{volume:.4g}**, from the reference point ({where}): {how}.",
        "",
    ]


def _architecture(best: FrozenTrial | None) -> list[str]:
    """The best drawn (a Mermaid block: GitHub, GitLab and VS Code render it)."""
    spec = best.user_attrs.get("spec") if best is not None else None
    if not spec:
        return []
    from nasblocks.draw import mermaid
    from nasblocks.spec import load_spec

    try:
        text = mermaid(load_spec(spec))
    except Exception:  # a picture never stops the report
        return []
    return [
        "## Architecture of the best",
        "",
        "(`nasblocks draw OUT --expand` draws its groups and templates layer by layer.)",
        "",
        "```mermaid",
        text.rstrip("\n"),
        "```",
        "",
    ]


def _top_table(complete: list[FrozenTrial], acc_index: int, score: str) -> list[str]:
    if not complete:
        return []
    ranked = sorted(complete, key=lambda t: (-t.values[acc_index], t.number))
    seen: set[Any] = set()
    unique = []
    for t in ranked:  # one row per architecture + settings
        key = t.user_attrs.get("trial_key") or t.user_attrs.get("table_key") or t.number
        if key not in seen:
            seen.add(key)
            unique.append(t)
    top = unique[:TOP]
    lines = [f"## Top {len(top)} architectures", ""]
    return lines + _table(top, None, score)


def _table(
    trials: list[FrozenTrial], files: list[str] | None, score: str = "val_acc"
) -> list[str]:
    from nasblocks.analysis import human

    head = f"| # | trial | {score} | params | FLOPs | latency ms | key choices |"
    rule = "|---:|---:|---:|---:|---:|---:|---|"
    if files:
        head += " file |"
        rule += "---|"
    lines = [head, rule]
    for i, t in enumerate(trials, 1):
        a = t.user_attrs
        acc = f"{a['val_acc']:.4f}" if a.get("val_acc") is not None else "-"
        params = human(a["n_params"]) if a.get("n_params") is not None else "-"
        flops = human(a["flops"]) if a.get("flops") is not None else "-"
        lat = f"{a['latency_ms']:.2f}" if a.get("latency_ms") is not None else "-"
        choices = "; ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        row = f"| {i} | {t.number} | {acc} | {params} | {flops} | {lat} | {choices} |"
        if files:
            row += f" `{files[i - 1]}` |"
        lines.append(row)
    return lines + [""]


def _problems(trials: list[FrozenTrial]) -> list[str]:
    reasons: collections.Counter[str] = collections.Counter()
    why = results.retry_reasons(trials)
    for t in trials:
        kind = _kind(t)
        if kind in ("infeasible", "failed", "diverged"):
            text = re.sub(r" \(layer [^)]*\)", "", results.status(t, why.get(t.number)))
            reasons[text[:160]] += 1
    if not reasons:
        return []
    lines = ["## Infeasible, diverged and failed trials", "", "| count | reason |", "|---:|---|"]
    lines += [f"| {n} | {r.replace('|', '/')} |" for r, n in reasons.most_common(15)]
    return lines + [""]


def _kind(t: FrozenTrial) -> str:
    how = outcomes.kind(t)
    return "duplicates" if how == "duplicate" else how


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    if isinstance(value, float):
        text = f"{value:.4g}"
    return text if len(text) <= 40 else text[:37] + "..."


def _run_info(out: Path) -> dict:
    try:
        return results.read_run_file(out)
    except Exception:
        return {}


# -- importances -----------------------------------------------------------------------------


MAX_IMPORTANCE_TRIALS = 300  # fANOVA on a seeded sample of this many trials at most
MIN_IMPORTANCE_TRIALS = 10  # fewer: a ranking of noise, not shown


def param_importances(study: optuna.Study, acc_index: int = 0) -> tuple[dict[str, float], str]:
    """``({param: importance}, "")``, or ``({}, why not)``."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if outcomes.feasible(t)
    ]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return {}, (
            f"{len(done)} completed trial{'s' if len(done) != 1 else ''}; a ranking needs "
            f"at least {MIN_IMPORTANCE_TRIALS}"
        )
    import random
    import warnings

    if len(done) > MAX_IMPORTANCE_TRIALS:  # fANOVA's cost grows with the trials: a sample
        sample = random.Random(0).sample(done, MAX_IMPORTANCE_TRIALS)
        with warnings.catch_warnings(), quiet_optuna():
            warnings.simplefilter("ignore")
            study = optuna.create_study(directions=study.directions)
            study.add_trials(sample)

    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = get_param_importances(
                study,
                evaluator=FanovaImportanceEvaluator(seed=0),
                target=lambda t: t.values[acc_index],
            )
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as e:
        return {}, f"Optuna could not compute them ({e})"
    imp = {k: float(v) for k, v in imp.items() if math.isfinite(v)}
    if not imp:
        return {}, "no parameter is shared by every completed trial and varies among them"
    return imp, ""


# -- plots -----------------------------------------------------------------------------------


def _save(fig, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _score_label(study: optuna.Study) -> str:
    """What the score axis shows: validation accuracy, or the metric a table search reads."""
    return str(study.user_attrs.get("score") or "validation accuracy")


def history_limits(values: list[float]) -> tuple[float, float] | None:
    """The y-range of the history plot: the completed trials' values with 10% margins, so
    that the differences among them show (pruned trials far below fall off the chart)."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = 0.1 * max(hi - lo, 1e-3)
    return lo - pad, hi + pad


def _plot_history(
    trials: list[FrozenTrial], acc_index: int, path: Path, score: str = "validation accuracy"
) -> bool:
    points = [
        (t.number, t.values[acc_index])
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and outcomes.feasible(t)
    ]
    pruned = [
        (t.number, t.intermediate_values[max(t.intermediate_values)])
        for t in trials
        if t.state == TrialState.PRUNED and t.intermediate_values
    ]
    if not points and not pruned:
        return False
    fig = _figure()
    ax = fig.add_subplot()
    if pruned:
        ax.scatter(
            *zip(*pruned, strict=True),
            marker="x",
            color="0.6",
            label="pruned (last epoch; far below: off the chart)",
        )
    if points:
        ax.scatter(*zip(*points, strict=True), color="tab:blue", label="complete")
        best, xs, ys = -math.inf, [], []
        for n, v in sorted(points):
            best = max(best, v)
            xs.append(n)
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers are whole
    limits = history_limits([v for _, v in points])
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xlabel("trial")
    ax.set_ylabel(score)
    ax.set_title("Optimization history")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _save(fig, path)
    return True


def _plot_acc_params(
    complete: list[FrozenTrial], best: FrozenTrial | None, front: list[FrozenTrial], path: Path
) -> bool:
    pts = [
        (t.user_attrs["n_params"], t.user_attrs["val_acc"], t.number)
        for t in complete
        if t.user_attrs.get("n_params") and t.user_attrs.get("val_acc") is not None
    ]
    if not pts:
        return False
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(
        [p[0] for p in pts], [p[1] for p in pts], color="tab:blue", alpha=0.7, label="trials"
    )
    on_front = {t.number for t in front}
    if on_front:
        f = sorted(p for p in pts if p[2] in on_front)
        ax.plot(
            [p[0] for p in f], [p[1] for p in f], "o-", color="tab:orange", label="Pareto front"
        )
    if best is not None and best.user_attrs.get("n_params"):
        ax.scatter(
            [best.user_attrs["n_params"]],
            [best.user_attrs["val_acc"]],
            s=160,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=2,
            label=f"best (trial {best.number})",
        )
    _log_axis(ax)
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Accuracy against size")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)
    return True


def _log_axis(ax: Any) -> None:
    """A log x axis with a few plain labels (30K, 40K; 1K, 10K, 100K), no minor-tick labels:
    matplotlib's defaults print 3x10^4 4x10^4 ... on a short range, one on top of the
    other. Call after the data are drawn (the range decides the ticks)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    if low > 0 and high / low < 10:  # within a decade: a few evenly spaced ticks
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    else:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tick(value: float) -> str:
    """1500 -> 1.5K, 2e6 -> 2M, 0.5 -> 0.5."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _plot_pareto(
    complete: list[FrozenTrial],
    front: list[FrozenTrial],
    names: list[str],
    acc_index: int,
    path: Path,
) -> bool:
    others = [i for i in range(len(names)) if i != acc_index]
    if not others or not complete:
        return False
    fig = _figure(4.8 * len(others), 4.0)
    on_front = {t.number for t in front}
    for k, i in enumerate(others, 1):
        ax = fig.add_subplot(1, len(others), k)
        rest = [t for t in complete if t.number not in on_front]
        if rest:
            ax.scatter(
                [t.values[i] for t in rest],
                [t.values[acc_index] for t in rest],
                color="0.6",
                alpha=0.7,
                label="dominated",
            )
        f = sorted(front, key=lambda t: t.values[i])
        ax.plot(
            [t.values[i] for t in f],
            [t.values[acc_index] for t in f],
            "o-",
            color="tab:orange",
            label="Pareto front",
        )
        if all(t.values[i] > 0 for t in complete):
            _log_axis(ax)
        ax.set_xlabel(names[i])
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("Pareto front")
    _save(fig, path)
    return True


def _plot_importances(importances: dict[str, float], path: Path) -> bool:
    items = list(importances.items())[:15][::-1]
    fig = _figure(6.4, 0.8 + 0.35 * len(items))
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:green")
    ax.set_xlabel("importance")
    ax.set_title("Parameter importances")
    _save(fig, path)
    return True
