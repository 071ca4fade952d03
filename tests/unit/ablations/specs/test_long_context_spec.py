"""The long_context ablation (issue 33, item 3): one shared 512-token start, every other arm a
(kind, length) warm-started from it, arms of one length scored on the same held-out set."""
import pytest

from ablations.config import RunConfig, settle
from ablations.plan.resolve import resolve_arm
from ablations.specs import ABLATIONS
from ablations.specs.catalogue.long_context import START, START_FROM

KINDS = {"full", "local", "local+global", "bigbird", "lsh-2", "lsh-4", "hybrid"}


@pytest.mark.parametrize("name,lengths", [("long_context", (1024, 2048)), ("long_context_gpu", (1024, 2048, 4096))])
def test_every_arm_is_a_kind_at_a_length_warm_started_from_the_shared_start(name, lengths):
    spec = ABLATIONS[name]
    config = settle(spec, RunConfig())
    res = {a.name: resolve_arm(spec, a, config, "fp") for a in spec.arms}
    start = res[START]
    assert spec.base_arm.name == START and not start.train.init_from and start.data.max_length == 512
    assert set(res) == {START} | {f"{k}/{T}" for k in KINDS for T in lengths}
    per_step = start.train.batch_size * start.data.max_length
    for T in lengths:
        arms = {k: res[f"{k}/{T}"] for k in KINDS}
        for kind, r in arms.items():
            assert r.train.init_from == START_FROM and r.train.init_positions == "random"
            assert r.data.max_length == r.model.max_position_embeddings == T
            assert r.train.batch_size * T == per_step          # the same tokens a step at every length
            assert r.data == arms["full"].data                 # one held-out set per length
            assert r.train.max_tokens == start.train.max_tokens  # the run's budget, the start's too
            assert spec.arm(f"{kind}/{T}").compare_to == (None if kind == "full" else f"full/{T}")
        assert arms["bigbird"].model.attention == arms["hybrid"].model.attention == "bigbird"
        assert arms["hybrid"].model.full_attn_threshold == T // 2
        assert arms["local"].model.attention == "local" and arms["local+global"].model.global_every == 3
        assert (arms["lsh-2"].model.lsh_n_hashes, arms["lsh-4"].model.lsh_n_hashes) == (2, 4)
        assert len({r.key for r in arms.values()}) == len(KINDS)  # no two kinds are one run
    assert {e.arm.split("/")[0] for e in spec.expectations} == {"bigbird", "lsh-4", "local"}


def test_the_start_trains_before_the_arms_that_read_it():
    """The runner trains arms in the spec's order: the start is the first."""
    for name in ("long_context", "long_context_gpu"):
        arms = ABLATIONS[name].arms
        assert arms[0].name == START and all(START_FROM in a.overrides.values() for a in arms[1:])
