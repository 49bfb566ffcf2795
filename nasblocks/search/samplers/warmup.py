"""Proxy warm-up (rung 0): rank many cheap candidates by a zero-cost proxy, evaluate the best
first.

Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS", ICLR, section 5) warm up a
search by scoring a large random sample with a proxy and seeding the searcher with the top of
that ranking. Here, with ``search.warmup``::

    warmup: {proxy: synflow, candidates: 200, keep: 10}

a new study first draws ``candidates`` random samples of the space (seeded), builds each
network (PyTorch's default init, fixed seed) and scores it with the proxy
(:mod:`nasblocks.proxies`); the ``keep`` best are queued with Optuna's
``Study.enqueue_trial``, so they are the study's first trials, and the sampler then goes on
as usual, learning from them: for ``local_search`` they replace its random start, for ``tpe``
and ``evolution`` they are the start-up population. No query of the budget is spent on the
candidates; only the ``keep`` chosen ones are evaluated (trained or looked up) and counted.

Data-free proxies (``params``, ``flops``, ``synflow``) need only the input shape; the others
score one batch of the training split (so not in a table search, which loads no data).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from nasblocks.errors import SearchError, SpecError
from nasblocks.space import RandomSource, SearchSpace

DATA_FREE = ("params", "flops", "synflow")
BATCH = 64  # training images a data proxy scores


def check_warmup(space: SearchSpace) -> None:
    """The proxy exists, and can run where the search runs (a table search has no data)."""
    warm = space.settings.warmup
    if warm is None:
        return
    from nasblocks import proxies

    where = ("search", "warmup", "proxy")
    if warm.proxy not in proxies.names():
        from nasblocks.registry import suggest

        raise space.error(
            f"unknown proxy {warm.proxy!r}{suggest(warm.proxy, proxies.names())}; "
            f"valid: {', '.join(proxies.names())}",
            where,
        )
    if space.settings.evaluate is not None and warm.proxy not in DATA_FREE:
        raise space.error(
            f"a table search loads no data: use a data-free proxy ({', '.join(DATA_FREE)})",
            where,
        )
    if warm.keep > warm.candidates:
        raise space.error(
            f"keep ({warm.keep}) is more than the candidates ({warm.candidates})",
            ("search", "warmup", "keep"),
        )


def pick(
    space: SearchSpace,
    complete: Callable[[dict[str, Any]], dict[str, Any]],
    batch: Callable[[tuple[int, int, int]], tuple[Any, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The parameters of the ``keep`` best-scored of ``candidates`` random samples.

    ``complete`` turns a sampled spec into a buildable one (input, classes); ``batch`` gives
    ``(inputs, targets)`` for an input shape (data proxies). Invalid samples are skipped;
    the same cell drawn twice is scored once. Ties keep the order of drawing.
    """
    import torch

    import nasblocks
    from nasblocks import proxies
    from nasblocks.spec import load_spec

    warm = space.settings.warmup
    assert warm is not None
    start = time.perf_counter()
    seen: set[str] = set()
    scored: list[tuple[float, int, dict[str, Any]]] = []
    source = RandomSource(space.settings.seed)
    for i in range(warm.candidates):
        sample = space.sample(source)
        try:
            spec = load_spec(complete(sample.spec))
        except SpecError:
            continue
        identity = spec.hash()
        if identity in seen:
            continue
        seen.add(identity)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = nasblocks.build(spec)
        if warm.proxy in DATA_FREE or batch is None:
            inputs, targets = torch.zeros(1, *spec.input_shape), None
        else:
            inputs, targets = batch(spec.input_shape)
        try:
            value = proxies.score(model, warm.proxy, inputs, targets)
        except proxies.ProxyError as e:
            raise SearchError(f"search.warmup: {e}") from None
        if not math.isnan(value):  # a degenerate net's NaN score cannot be ranked: left out
            scored.append((value, i, sample.params))
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen = [params for _, _, params in scored[: warm.keep]]
    if log is not None:
        log(
            f"warm-up: {len(seen)} distinct candidates scored with {warm.proxy} in "
            f"{time.perf_counter() - start:.1f}s; the best {len(chosen)} are evaluated first"
        )
    return chosen
