"""``nasblocks validate FILE...``: parse, expand and shape-check specs without importing torch."""

from __future__ import annotations

import sys

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.errors import SpecError
    from nasblocks.spec import load_spec, plan

    failed = 0
    for file in args.files:
        if _is_space(file):
            failed += _validate_space(file, args.quiet)
            continue
        try:
            spec = load_spec(file)
            net_plan = plan(spec)
        except SpecError as e:
            print(str(e), file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            shape = "x".join(map(str, net_plan.out_shape))
            size = _size(net_plan)
            print(
                f"{file}: ok ({spec.name}: {'x'.join(map(str, spec.input_shape))} -> {shape}"
                f"{size})"
            )
    return 2 if failed else 0


def _is_space(file: str) -> bool:
    """A search space: a ``search:`` section or a search node anywhere (a file that cannot be
    read is left to the spec path, which reports it)."""
    from nasblocks.errors import SpecError
    from nasblocks.space.nodes import contains_node
    from nasblocks.spec.yamlio import load_yaml

    try:
        raw, _ = load_yaml(file)
    except (SpecError, OSError):
        return False
    return isinstance(raw, dict) and ("search" in raw or contains_node(raw))


def _validate_space(file: str, quiet: bool) -> int:
    """Check a space's nodes and settings, then build (shape-check) its networks: errors for
    options that never build, a warning when some networks do not. 1 if it failed."""
    from nasblocks.analysis import human
    from nasblocks.errors import NasBlocksError, SpecError
    from nasblocks.search.run import check_space, data_info, table_info
    from nasblocks.search.survey import shown, survey
    from nasblocks.space import load_space
    from nasblocks.train.handle import DataHandle

    unchecked = ""
    try:
        space = load_space(file)
        settings = space.settings
        if settings.evaluate is not None:
            info = table_info(space)
        else:
            try:
                info = data_info(space, DataHandle.from_settings(settings.data, settings.seed))
            except SpecError as e:
                # data that is not here (a download, another machine's folder): a space that
                # writes its input and classes is still checked, and says what was not
                written = _written_info(space)
                if written is None:
                    raise
                info, unchecked = written, f"; data not checked: {e.message.split(';')[0]}"
        check_space(space, info)
        result = survey(space, info)
    except NasBlocksError as e:
        print(str(e), file=sys.stderr)
        return 1
    for dead in result.dead:
        label = dead.node.labels[dead.index]
        where = (*dead.node.path, "choice", dead.index)
        message = (
            f"{dead.node.name}={label} never builds ({dead.tried} of {dead.tried} networks "
            f"with it fail): {dead.reason}"
        )
        print(str(space.locate(SpecError(message, where))), file=sys.stderr)
    if result.dead:
        return 1
    for reason, n in result.failures.most_common():
        example = shown(result.examples[reason])
        print(
            f"{file}: warning: {n} of {result.tried} networks do not build: {reason} "
            f"(e.g. {example})",
            file=sys.stderr,
        )
    if not quiet:
        how = "all" if result.exhaustive else "a sample of"
        size = (
            f"{result.size:,} networks"
            if result.size is not None
            else "continuous"
            if result.combinations is None
            else f"up to {result.combinations:,} combinations"
        )
        params = ""
        if result.params is not None:
            low, high = result.params
            params = f", {human(low)}-{human(high)} params"
        print(
            f"{file}: ok (space {space.name}: {size}, {len(space.nodes)} nodes; "
            f"{result.built} of {how} {result.tried} build{params}){unchecked}"
        )
    return 0


def _written_info(space):
    """``DataInfo`` from the space's own ``input`` and ``num_classes``, when it writes both."""
    from nasblocks.search.candidate import DataInfo

    shape, classes = space.template.get("input"), space.template.get("num_classes")
    if (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) for v in shape)
        and isinstance(classes, int)
    ):
        return DataInfo(tuple(shape), classes)
    return None


def _size(net_plan) -> str:
    """``, P params, M MACs`` from the blocks' analytic costs (torch-free); for a network
    with blocks that declare none, a lower bound and a pointer to ``summary``."""
    from nasblocks.analysis import human
    from nasblocks.spec.plan import plan_costs

    missing: set[str] = set()

    def declared(block, in_shape):
        got = block.cost(in_shape)
        if got is None:
            missing.add(block.kind)
            return (0, 0)
        return got

    costs = plan_costs(net_plan, declared)
    params, macs = sum(c[0] for c in costs), sum(c[1] for c in costs)
    if missing:
        kinds = ", ".join(sorted(missing))
        return (
            f", at least {params:,} params and {human(macs)} MACs; {kinds} counted by "
            "`nasblocks summary`"
        )
    return f", {params:,} params, {human(macs)} MACs"


def register(sub) -> None:
    p = add_command(
        sub,
        "validate",
        "check spec and search-space files: syntax, fields and every shape",
        "nasblocks validate nets/*.yaml",
        run,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
