"""Sample -> candidate: validation, measurements, constraints, identity — before training."""

from __future__ import annotations

import pytest

from nasblocks.search.candidate import (
    DataInfo,
    Infeasible,
    complete_spec,
    make_candidate,
    trial_key,
)
from nasblocks.space import FixedSource, load_space
from nasblocks.train import TrainConfig

DIGITS = DataInfo((1, 8, 8), 10)


def space(write_space, **overrides):
    return load_space(write_space(), overrides)


def sample(sp, width=4, lr=0.1):
    return sp.sample(FixedSource({"stages.widths[0]": width, "train.lr": lr}))


def test_candidate_is_validated_measured_and_completed_from_the_data(write_space):
    sp = space(write_space)
    cand = make_candidate(sample(sp, 8), sp.settings, DIGITS)
    assert cand.spec.input_shape == (1, 8, 8) and cand.spec.num_classes == 10
    assert cand.config.epochs == 2 and cand.config.lr == 0.1 and cand.config.seed == 0
    assert cand.config.max_train_batches == 3
    from nasblocks.analysis import measure

    # by hand: stem conv 1->4 3x3 + BN; basic block 4->8 (3x3, 3x3, 1x1 shortcut, 3 BNs); fc
    params = (36 + 8) + (4 * 8 * 9 + 16 + 8 * 8 * 9 + 16 + 4 * 8 + 16) + (8 * 10 + 10)
    macs = (36 + 4 * 8 * 9 + 8 * 8 * 9 + 4 * 8) * 8 * 8 + 8 * 10
    assert (cand.params, cand.flops) == (params, macs) == measure(cand.spec)
    assert cand.latency_ms is None  # nobody asked for it


def test_input_comes_from_the_space_or_the_data_size_setting(write_space):
    sp = space(write_space, **{"search.data.input_size": 12})
    assert complete_spec({}, DIGITS, sp.settings)["input"] == [1, 12, 12]
    assert complete_spec({"input": [3, 16, 16]}, DIGITS, sp.settings)["input"] == [3, 16, 16]
    assert complete_spec({"num_classes": 3}, DIGITS, sp.settings)["num_classes"] == 10


def test_invalid_architecture_is_infeasible_with_the_validator_message(write_space):
    sp = space(write_space, **{"stages.groups": 2})
    with pytest.raises(Infeasible, match="only groups 1.* at stages.groups") as e:
        make_candidate(sample(sp), sp.settings, DIGITS)
    assert e.value.violations == {"valid": 1.0}


def test_invalid_training_settings_are_infeasible(write_space):
    sp = space(write_space, **{"search.train.warmup_epochs": 5})
    with pytest.raises(Infeasible, match="warmup_epochs"):
        make_candidate(sample(sp), sp.settings, DIGITS)


@pytest.mark.parametrize(
    ("limit", "key"), [("max_params", "max_params"), ("max_flops", "max_flops")]
)
def test_constraints_give_relative_violations(write_space, limit, key):
    sp = space(write_space)
    cand = make_candidate(sample(sp, 8), sp.settings, DIGITS)
    value = cand.params if key == "max_params" else cand.flops
    tight = space(write_space, **{f"search.constraints.{limit}": value // 2})
    with pytest.raises(Infeasible, match=f"> {key}") as e:
        make_candidate(sample(tight, 8), tight.settings, DIGITS)
    assert e.value.violations[key] == pytest.approx(value / (value // 2) - 1)
    loose = space(write_space, **{f"search.constraints.{limit}": value})
    make_candidate(sample(loose, 8), loose.settings, DIGITS)  # at the limit is fine


def test_latency_is_measured_when_a_constraint_needs_it(write_space):
    sp = space(
        write_space, **{"search.constraints.max_latency_ms": 1e-6, "search.latency.repeats": 2}
    )
    with pytest.raises(Infeasible, match="latency .* ms > max_latency_ms") as e:
        make_candidate(sample(sp), sp.settings, DIGITS)
    assert e.value.violations["max_latency_ms"] > 0


def test_trial_key_is_the_architecture_plus_training_settings(write_space):
    sp = space(write_space)
    a = make_candidate(sample(sp, 4, 0.1), sp.settings, DIGITS)
    b = make_candidate(sample(sp, 4, 0.1), sp.settings, DIGITS)
    c = make_candidate(sample(sp, 4, 0.2), sp.settings, DIGITS)
    d = make_candidate(sample(sp, 8, 0.1), sp.settings, DIGITS)
    assert a.key == b.key and a.spec_hash == c.spec_hash and a.key != c.key
    assert a.spec_hash != d.spec_hash
    gpu = a.config.model_copy(update={"device": "cuda"})
    assert trial_key(a.spec_hash, gpu) == a.key  # where it trains does not change it
    assert trial_key(a.spec_hash, TrainConfig(epochs=3)) != a.key
