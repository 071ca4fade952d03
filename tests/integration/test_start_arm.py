"""Arms that warm-start from another arm of the same run (`train.init_from = "RUN_DIR/ARM"`,
long_context's shared start): seed k starts from that arm's seed k, the start trains first,
and what cannot work is one line before or instead of training."""
import pytest
import torch

from ablations.config import RunConfig
from ablations.plan.lr_search import search_spec
from ablations.run import run_ablation
from ablations.run.weights import with_init_from
from ablations.rundir import read_rows, results
from ablations.specs import AblationSpec, Arm, start_arm
from core.interop import load_arm
from core.train import TrainConfig

CHAIN = AblationSpec("chain", "a start and an arm that continues it", "roberta",
                     (Arm("start"), Arm("lsh", {"model.attention": "lsh", "model.lsh_bucket_size": 16,
                                                "train.init_from": "RUN_DIR/start"})))


def quick(out, corpus_file, cache_dir, **kw) -> RunConfig:
    return RunConfig(corpus=str(corpus_file), quick=True, out=str(out), cache_dir=str(cache_dir), progress=False, **kw)


def test_seed_k_of_a_dependent_arm_starts_from_seed_k_of_the_start(tmp_path, corpus_file, cache_dir):
    """The bug this guards: RUN_DIR/start-512 was never resolved, so on kowiki every arm of
    long_context after the start failed. Here an LSH arm warm-starts from a full-attention
    start of the same run, two seeds: every unit finishes, and seed k resolves to the start's
    seed k (the function the trainer calls), whose weights differ by seed."""
    run_ablation(CHAIN, quick(tmp_path, corpus_file, cache_dir, seeds=2))
    rows = results(read_rows(tmp_path / "results.jsonl"))
    assert {k: r.status for k, r in rows.items()} == {("start", 0): "ok", ("start", 1): "ok", ("lsh", 0): "ok",
                                                      ("lsh", 1): "ok"}, {k: r.error for k, r in rows.items()}
    for seed in (0, 1):  # the LSH arm's shared QK began at the start's query projection
        assert "from the source's query projection (shared QK)" in rows[("lsh", seed)].warm_start
        cfg = with_init_from(TrainConfig(max_steps=1, init_from="RUN_DIR/start"), tmp_path, seed)
        assert cfg.init_from == str(tmp_path / rows[("start", seed)].weights_dir)
        pinned = with_init_from(TrainConfig(max_steps=1, init_from="RUN_DIR/start@1"), tmp_path, seed)
        assert pinned.init_from == str(tmp_path / "arms" / "start" / "seed-1")
    starts = [load_arm(tmp_path / rows[("start", s)].weights_dir).model.state_dict() for s in (0, 1)]
    assert not torch.equal(starts[0]["embeddings.word.weight"], starts[1]["embeddings.word.weight"])


def test_a_dependent_without_its_start_fails_in_one_line_naming_it(tmp_path, corpus_file, cache_dir):
    summary = run_ablation(CHAIN, quick(tmp_path, corpus_file, cache_dir, arms="lsh"))
    row = results(read_rows(tmp_path / "results.jsonl"))[("lsh", 0)]
    assert row.status == "error" and "\n" not in row.error and len(summary.errors) == 1
    assert "init_from RUN_DIR/start: that arm of this run (seed 0) has not been trained" in row.error
    assert "(with --arms, include start)" in row.error


def test_a_spec_whose_start_comes_later_is_refused():
    pinned = AblationSpec("x", "", "bert", (Arm("a"), Arm("b", {"train.init_from": "RUN_DIR/a@1"})))
    assert start_arm(pinned.arms[1]) == "a" and start_arm(pinned.arms[0]) is None
    with pytest.raises(ValueError, match="warm-starts from RUN_DIR/b, which must name an arm listed before it"):
        AblationSpec("x", "", "bert", (Arm("a", {"train.init_from": "RUN_DIR/b"}), Arm("b")))
    with pytest.raises(ValueError, match="the arms before it: a"):
        AblationSpec("x", "", "bert", (Arm("a"), Arm("c", {"train.init_from": "RUN_DIR/nope"})))


def test_lr_search_refuses_arms_that_start_from_another_arm():
    spec = AblationSpec("x", "", "bert", (Arm("a"), Arm("b", {"train.init_from": "RUN_DIR/a"})))
    with pytest.raises(ValueError, match=r"--lr-search: arm 'b' of x warm-starts from a.*give one rate with --lr"):
        search_spec(spec, {"a": 1e-3, "b": 1e-3}, (0.5, 1.0))
