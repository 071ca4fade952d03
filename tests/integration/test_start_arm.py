"""Arms that warm-start from another arm of the same run (`train.init_from = "RUN_DIR/ARM"`,
long_context's shared start): seed k starts from that arm's seed k, the start trains first,
and what cannot work is one line before or instead of training."""
import pytest
import torch

from ablations.__main__ import main as cli
from ablations.plan.lr_search import search_spec
from ablations.rundir import read_rows, results
from ablations.specs import AblationSpec, Arm
from core.interop import load_arm

START = "start-512"


def test_seed_k_of_a_dependent_arm_starts_from_seed_k_of_the_start(tmp_path, capsys):
    """The bug this guards: RUN_DIR/start-512 was never resolved, so on kowiki every arm of
    long_context after the start failed. Here the dependent's seed k must begin from the start's
    seed k: its first forward, before any step, reproduces the start's kept weights."""
    run = tmp_path / "lc"
    code = cli(["run", "long_context", "--quick", "--seeds", "2", "--arms", f"{START},bigbird/1024",
                "--out", str(run), "--no-progress"])
    rows = results(read_rows(run / "results.jsonl"))
    assert code == 0 and {k: r.status for k, r in rows.items()} == {
        (START, 0): "ok", (START, 1): "ok", ("bigbird/1024", 0): "ok", ("bigbird/1024", 1): "ok"}
    for seed in (0, 1):
        dependent = rows[("bigbird/1024", seed)]
        assert dependent.warm_start and "tensors copied" in dependent.warm_start
    # the two starts differ (seeds), and the resolution picks the matching one
    from ablations.run.weights import with_init_from
    from core.train import TrainConfig

    starts = [load_arm(run / rows[(START, s)].weights_dir).model.state_dict() for s in (0, 1)]
    key = "embeddings.word.weight" if "embeddings.word.weight" in starts[0] else next(iter(starts[0]))
    assert not torch.equal(starts[0][key], starts[1][key])
    for seed in (0, 1):
        cfg = with_init_from(TrainConfig(init_from=f"RUN_DIR/{START}"), run, seed)
        assert cfg.init_from == str(run / "arms" / START / f"seed-{seed}")
        explicit = with_init_from(TrainConfig(init_from=f"RUN_DIR/{START}@1"), run, seed)
        assert explicit.init_from == str(run / "arms" / START / "seed-1")


def test_a_dependent_without_its_start_fails_in_one_line_naming_it(tmp_path, capsys):
    run = tmp_path / "lc"
    assert cli(["run", "long_context", "--quick", "--arms", "bigbird/1024", "--out", str(run), "--no-progress"]) == 1
    row = results(read_rows(run / "results.jsonl"))[("bigbird/1024", 0)]
    assert row.status == "error" and "\n" not in row.error
    assert f"init_from RUN_DIR/{START}: that arm of this run (seed 0) has not been trained" in row.error
    assert f"include {START}" in row.error


def test_a_spec_whose_start_comes_later_is_refused():
    with pytest.raises(ValueError, match="warm-starts from RUN_DIR/b, which must name an arm listed before it"):
        AblationSpec("x", "", "bert", (Arm("a", {"train.init_from": "RUN_DIR/b"}), Arm("b")))
    with pytest.raises(ValueError, match="the arms before it: a"):
        AblationSpec("x", "", "bert", (Arm("a"), Arm("c", {"train.init_from": "RUN_DIR/nope"})))


def test_lr_search_refuses_arms_that_start_from_another_arm():
    spec = AblationSpec("x", "", "bert", (Arm("a"), Arm("b", {"train.init_from": "RUN_DIR/a"})))
    with pytest.raises(ValueError, match=r"--lr-search: arm 'b' of x warm-starts from a.*give one rate with --lr"):
        search_spec(spec, {"a": 1e-3, "b": 1e-3}, (0.5, 1.0))
