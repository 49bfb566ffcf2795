"""Proxy warm-up (search.warmup): the proxy's best candidates are the study's first trials."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nasblocks
from nasblocks import proxies
from nasblocks.errors import SpecError
from nasblocks.search import search
from nasblocks.search.outputs.results import load_study
from nasblocks.space import RandomSource, load_space

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "search_spaces" / "nas_bench_201.yaml"


def expected_picks(space, candidates, keep, proxy="params", complete=lambda s: s):
    """The warm-up by hand: seeded random draws, one score each, the best `keep`."""
    source = RandomSource(space.settings.seed)
    scored, seen = [], set()
    for i in range(candidates):
        sample = space.sample(source)
        spec = nasblocks.load_spec(complete(sample.spec))
        if spec.hash() in seen:
            continue
        seen.add(spec.hash())
        model = nasblocks.build(spec)
        scored.append(
            (-proxies.score(model, proxy, torch.zeros(1, *spec.input_shape)), i, sample.params)
        )
    return [p for _, _, p in sorted(scored, key=lambda x: x[:2])[:keep]]


def test_a_table_search_evaluates_the_proxys_best_first(tmp_path):
    over = {
        "search.warmup": {"proxy": "params", "candidates": 12, "keep": 4},
        "search.budget.trials": 15,
    }
    outcome = search(NB201, overrides=over, out=tmp_path, progress=False)
    assert outcome.finished == 15  # the candidates are not queries; the 4 picks are
    trials = sorted(load_study(tmp_path).trials, key=lambda t: t.number)
    assert len(trials) == 15
    picks = expected_picks(load_space(NB201, over), 12, 4)
    assert [t.params for t in trials[:4]] == picks
    assert all(t.user_attrs.get("warmup") == "params" for t in trials[:4])
    assert not any("warmup" in t.user_attrs for t in trials[4:])


def test_a_resumed_study_is_not_warmed_up_again(tmp_path):
    over = {
        "search.warmup": {"proxy": "params", "candidates": 6, "keep": 2},
        "search.budget.trials": 5,
    }
    search(NB201, overrides=over, out=tmp_path, progress=False)
    search(NB201, overrides={**over, "search.budget.trials": 8}, out=tmp_path, progress=False)
    trials = load_study(tmp_path).trials
    assert len(trials) == 8 and sum("warmup" in t.user_attrs for t in trials) == 2


def test_a_trained_search_queues_the_picks_as_its_first_trials(
    write_space, tmp_path, fake_trainer, tiny_space_text
):
    text = tiny_space_text(trials=4) + "  warmup: {proxy: naswot, candidates: 6, keep: 2}\n"
    fake_trainer()
    search(write_space(text), out=tmp_path / "out", progress=False)
    trials = sorted(load_study(tmp_path / "out").trials, key=lambda t: t.number)
    assert len(trials) == 4
    assert [t.user_attrs.get("warmup") for t in trials] == ["naswot", "naswot", None, None]


@pytest.mark.parametrize(
    ("warmup", "message"),
    [
        ({"proxy": "synflw"}, "unknown proxy 'synflw' (did you mean 'synflow'?)"),
        ({"proxy": "naswot"}, "a table search loads no data: use a data-free proxy"),
        (
            {"proxy": "params", "candidates": 3, "keep": 5},
            "keep (5) is more than the candidates (3)",
        ),
    ],
)
def test_warmup_mistakes_are_located(tmp_path, warmup, message):
    with pytest.raises(SpecError) as e:
        search(NB201, overrides={"search.warmup": warmup}, out=tmp_path, progress=False)
    assert message in str(e.value) and str(e.value).startswith(str(NB201))
    assert "search.warmup" in str(e.value)
