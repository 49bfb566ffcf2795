"""What every backend's run does before its first trial and after its last one.

:func:`prepare_run` makes every check before a run writes anything (the output folder, the
storage URL, the data, the space, the table); :func:`finish` writes the outputs (trials.csv,
best.yaml, best.pt, report.md), scores the best on the test split and returns the
:class:`SearchOutcome`. :func:`nasblocks.search.search` (the embedded Optuna backend) and
:func:`nasblocks.search.search_ray` both start and end this way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from pydantic import ValidationError

from nasblocks.errors import SpecError
from nasblocks.files import check_folder
from nasblocks.search.backends.storage import check_url
from nasblocks.search.budget import count_finished
from nasblocks.search.candidate import DataInfo, complete_spec, train_settings
from nasblocks.search.evaluators import table as tables
from nasblocks.search.objective import study_name
from nasblocks.search.outputs import folder as run_folder
from nasblocks.search.outputs import results
from nasblocks.search.outputs.progress import Progress
from nasblocks.search.outputs.report import write_report
from nasblocks.search.samplers import make_sampler
from nasblocks.search.samplers.warmup import check_warmup
from nasblocks.space import FirstSource, ParamSource, RandomSource, SearchSpace
from nasblocks.train.handle import DataHandle


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished :func:`search` returns (the files are under ``out``)."""

    out: Path
    study_name: str
    storage: str
    best_trial: int | None
    best_values: tuple[float, ...] | None
    test_acc: float | None
    finished: int
    elapsed_s: float
    test_metric: str = "test accuracy"
    """What ``test_acc`` is: the held-out test accuracy of the best's weights, or, in a table
    search, the reported column (``search.evaluate.report``, e.g. ``test_acc``)."""


def default_out(space: SearchSpace) -> Path:
    """Where a run writes when no ``out`` is given: ``experiments/runs/<space name>``."""
    return Path("experiments") / "runs" / space.name


def finish(
    study: optuna.Study,
    out: Path,
    data: DataHandle,
    storage: str,
    started: float,
    show: Progress,
    summary: bool = True,
) -> SearchOutcome:
    """The outputs of a run whose trials are done, and its outcome (printed by ``show``
    unless ``summary`` is off: a run that stopped on an error says that instead)."""
    results.write_outputs(study, out)
    best = results.best_trial(study)
    if best is not None and "report_value" in best.user_attrs:  # a table search
        test_acc, test_metric = best.user_attrs["report_value"], best.user_attrs["report_metric"]
    else:
        test_acc, test_metric = results.evaluate_best(study, out, data), "test accuracy"
    write_report(study, out)
    outcome = SearchOutcome(
        out=out,
        study_name=study.study_name,
        storage=storage,
        best_trial=best.number if best else None,
        best_values=tuple(best.values) if best else None,
        test_acc=test_acc,
        finished=count_finished(study),
        test_metric=test_metric,
        elapsed_s=time.perf_counter() - started,
    )
    if summary:
        show.summary(outcome, best)
    return outcome


def prepare_run(
    space: SearchSpace, out: Path, url: str, data: DataHandle, fresh: bool = False
) -> DataInfo:
    """Every check before a run writes anything: the output folder (not a file, writable; its
    study, if any, this space's: :mod:`.outputs.folder`), the data, the space. Returns the data's
    shape and classes."""
    check_url(url)
    check_folder(out)
    if fresh:
        run_folder.check_fresh(out, url)
    else:
        run_folder.check_existing(out, space, url, study_name(space))
    make_sampler(space, space.settings.seed)  # e.g. evolution refuses several objectives
    check_warmup(space)
    if space.settings.evaluate is not None:
        info = table_info(space)
        check_space(space, info)
        check_table(space)
        return info
    info = data_info(space, data)
    check_input(space, info)
    check_space(space, info)
    if space.settings.supernet is not None and not fresh:
        from nasblocks.supernet.training import check_checkpoint

        check_checkpoint(space, info, out)  # before run.json is written again
    return info


def check_input(space: SearchSpace, info: DataInfo) -> None:
    """A space that writes its ``input`` must take the data's channels: images are resized to
    the size it writes (an explicit resize), but channels are never invented or dropped."""
    from nasblocks.space.nodes import contains_node

    given = space.template.get("input")
    if given is None or contains_node(given) or not isinstance(given, list) or not given:
        return
    if given[0] != info.input_shape[0]:
        shape = "x".join(map(str, info.input_shape))
        raise space.error(
            f"the space's input has {given[0]} channels, the data's images are {shape} "
            f"({space.settings.data.dataset}): write input: [{info.input_shape[0]}, ...] or "
            "leave `input` out (search.data.input_size resizes)",
            ("input",),
        )


def _objective_index(space: SearchSpace, metric: str) -> int:
    return [m for m, _ in space.settings.directions()].index(metric)


def table_info(space: SearchSpace) -> DataInfo:
    """A table space's input and classes: written in the space (no data is loaded)."""
    from nasblocks.space.nodes import contains_node

    settings = space.settings
    tabled = {o.metric for o in settings.table_objectives}
    built = [m for m, _ in settings.directions() if m != "val_acc" and m not in tabled]
    if built:
        raise space.error(
            f"table evaluation builds no network, so it has no {built[0]}; read costs from a "
            "table: objectives: [val_acc, {metric: COLUMN, table: FILE}]",
            ("search", "objectives"),
        )
    limits = settings.constraints
    if any(v is not None for v in (limits.max_params, limits.max_flops, limits.max_latency_ms)):
        raise space.error(
            "constraints measure each network, which table evaluation does not build; "
            "remove them (or add the cost as a table column and filter the table)",
            ("search", "constraints"),
        )
    template = space.template
    for key in ("input", "num_classes"):
        if key not in template or contains_node(template[key]):
            raise space.error(
                f"a space evaluated from a table sets `{key}` (no dataset is loaded)", (key,)
            )
    shape = template["input"]
    if not (
        isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) for d in shape)
    ):
        raise space.error("input is [C, H, W]", ("input",))
    c, h, w = shape
    return DataInfo((c, h, w), template["num_classes"])


def check_table(space: SearchSpace) -> None:
    """The table exists and has the columns; the key names nodes; the first sample is in it."""
    evaluate = space.settings.evaluate
    assert evaluate is not None
    try:
        tables.check_key(evaluate.key, [n.name for n in space.nodes])
    except SpecError as e:
        raise space.locate(e) from None
    try:
        key = tables.make_key(evaluate.key, space.sample(FirstSource()).params)
        tables.load_joined(evaluate, evaluate.metric, None, space.file).score(key)
    except tables.TableError as e:
        raise space.error(str(e), ("search", "evaluate")) from None
    joined: list[tuple[str, str | None, tuple[Any, ...]]] = [
        (o.metric, o.table, ("search", "objectives", _objective_index(space, o.metric)))
        for o in space.settings.table_objectives
    ]
    if evaluate.report is not None:
        report = evaluate.report
        joined.append((report.metric, report.table, ("search", "evaluate", "report", "metric")))
    for metric, table, where in joined:
        try:
            tables.load_joined(evaluate, metric, table, space.file).mean(key)
        except tables.TableError as e:
            message = str(e).removeprefix("search.evaluate.metric: ")
            raise space.error(message, where) from None


def data_info(space: SearchSpace, data: DataHandle) -> DataInfo:
    """The data's image shape and classes; a dataset that cannot be loaded is an error at
    ``search.data.<field>`` of the space (did-you-mean for an unknown name)."""
    from nasblocks.train import DatasetError

    try:
        shape, classes = data.info()
    except DatasetError as e:
        raise space.error(str(e), ("search", "data", e.field or "dataset")) from None
    return DataInfo(shape, classes)


def check_space(space: SearchSpace, info: DataInfo, samples: int = 24) -> None:
    """Refuse a space none of whose samples is valid (a typo, a misplaced field), located.

    A space some samples of which fail is fine: those become infeasible trials.
    """

    from nasblocks.spec import load_spec
    from nasblocks.spec.located import pydantic_error
    from nasblocks.train import TrainConfig

    first: SpecError | None = None
    sources: list[ParamSource] = [
        FirstSource(),
        *(RandomSource(space.settings.seed + i) for i in range(samples)),
    ]
    for source in sources:
        sample = space.sample(source)
        try:
            load_spec(complete_spec(sample.spec, info, space.settings))
        except SpecError as e:
            first = first or e
            continue
        try:
            TrainConfig.model_validate(train_settings(sample.train, space.settings))
        except ValidationError as e:
            first = first or pydantic_error(e, ("search", "train"))
            continue
        return
    assert first is not None
    where = first.path
    note = "" if not space.nodes else f" (in all {len(sources)} samples tried)"
    raise space.locate(SpecError(first.message + note, where))
