"""Measured training FLOPs (core.measure.flops) and budgets matched on them (TrainConfig.max_flops,
`run --flops`)."""
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.data import DataConfig, build_dataset
from core.measure import measured_flops, measured_flops_cached
from core.model import PretrainingModel
from core.train import CHECKPOINT, TrainConfig, Trainer, load_checkpoint
from variants import get_config

# Measured and analytic FLOPs agree within this (relative): both count matmul FLOPs only
# (layer norms, softmax, GELU, dropout and LSH's sorting are not matmuls, and torch's counter
# skips them too). The one systematic gap on CPU in training mode is the sentence head's
# pooler and classifier, which run once per example and which the analytic model leaves out;
# the test below asserts that gap exactly.
TOLERANCE = 0.01
DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=64)


def sentence_head_flops_per_token(cfg, seq_len: int) -> float:
    """pooler (H x H) and classifier (H x 2) on [CLS]: forward, and a backward twice its size."""
    H = cfg.hidden_size
    return 3 * (2 * H * H + 2 * H * 2) / seq_len if cfg.sentence_head else 0.0


@pytest.mark.parametrize("name,size", [("bert", "tiny"), ("bert", "mini"), ("albert", "tiny"), ("albert", "mini"),
                                       ("roberta", "tiny")])
def test_measured_flops_agree_with_the_analytic_model(name, size):
    cfg = get_config(name, size, vocab_size=500, max_position_embeddings=64)
    rng = torch.get_rng_state()
    m = measured_flops(cfg, 2, 64)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    # the MLM head runs on the predicted positions only, in the model and in the formula:
    # the measured batch predicts exactly round(0.15 x 64) = 10 of 64 tokens per row
    assert m["mask_fraction"] == 10 / 64
    assert m["flops_per_step"] == m["flops_per_token"] * 2 * 64
    assert m["flops_label"] == "exact"
    assert abs(m["flops_per_token"] / m["flops_per_token_analytic"] - 1) < TOLERANCE
    # the whole gap is the sentence head (none in RoBERTa), to the FLOP; albert-mini's
    # factorized embedding projection (E=128 -> H=256) is counted alike by both
    gap = sentence_head_flops_per_token(cfg, 64)
    assert m["flops_per_token"] == pytest.approx(m["flops_per_token_analytic"] + gap, rel=1e-12)


def test_fused_attention_is_counted_with_its_backward_recomputation():
    """With attention dropout on CPU the model spells attention out as matmuls; without it,
    SDPA runs torch's CPU flash kernel, which the counter does not know by itself
    (core.measure.flops registers it). Its backward recomputes the scores Q K^T: one more
    (T x d) @ (d x T) per head and layer than plain autograd, i.e. 2 x T x H FLOPs per
    token and layer. That recomputation is real work and is counted; the analytic model
    (3 x forward) does not include it."""
    T = 64
    matmuls = measured_flops(get_config("bert", "tiny", vocab_size=500, max_position_embeddings=T), 2, T)
    fused = measured_flops(get_config("bert", "tiny", vocab_size=500, max_position_embeddings=T,
                                      attention_dropout=0.0), 2, T)
    assert any("flash_attention_for_cpu_backward" in op for op in fused["flops_by_op"])
    cfg = get_config("bert", "tiny")
    assert fused["flops_per_token"] - matmuls["flops_per_token"] == cfg.num_layers * 2 * T * cfg.hidden_size


def test_reformer_at_4096_tokens_costs_a_fraction_of_bert():
    kw = dict(vocab_size=500, max_position_embeddings=4096)
    bert = measured_flops(get_config("bert", "tiny", **kw), 1, 4096)
    reformer = measured_flops(get_config("reformer", "tiny", **kw), 1, 4096)  # reversible: recomputation counted
    assert reformer["flops_label"] == "dense-equivalent"
    assert reformer["flops_per_step"] < 0.5 * bert["flops_per_step"]
    # the analytic figure leaves out the recomputation and LSH's hashing: measured is above it
    assert reformer["flops_per_token"] > 1.3 * reformer["flops_per_token_analytic"]


def test_reversible_recomputation_is_counted_as_one_more_encoder_forward():
    """reformer-pytorch's reversible layers recompute every layer's forward (LSH hashing
    included) inside the backward pass; the counter sees it because the backward really runs.
    The reversible step's excess over the same model without reversible layers is exactly
    one forward of that model's encoder."""
    T, kw = 1024, dict(vocab_size=500, max_position_embeddings=1024)
    reversible = measured_flops(get_config("reformer", "tiny", **kw), 1, T)
    plain_cfg = get_config("reformer", "tiny", reversible=False, **kw)
    plain = measured_flops(plain_cfg, 1, T)
    # LSH's hash rotations and bucket attention are counted: above the dense-equivalent estimate
    assert plain["flops_per_token"] > plain["flops_per_token_analytic"]
    encoder = PretrainingModel(plain_cfg).encoder.train()
    with FlopCounterMode(display=False) as forward:
        encoder(torch.randn(1, T, plain_cfg.hidden_size))
    assert reversible["flops_per_step"] - plain["flops_per_step"] == forward.get_total_flops() > 0


def test_measurements_are_cached_per_config_and_shape():
    cfg = get_config("roberta", "tiny", vocab_size=300, max_position_embeddings=32)
    a = measured_flops_cached(cfg, 2, 32)
    a["flops_by_op"].clear()  # a copy: the cache is not the caller's to change
    b = measured_flops_cached(cfg, 2, 32)
    assert b["flops_by_op"] and b["flops_per_step"] == measured_flops(cfg, 2, 32)["flops_per_step"]
    assert measured_flops_cached(cfg, 4, 32)["flops_per_step"] == 2 * b["flops_per_step"]


def test_a_flop_budget_needs_the_measured_flops_per_step():
    with pytest.raises(ValueError, match="max_flops=1e\\+12 needs flops_per_step > 0"):
        TrainConfig(max_flops=1e12).check_flops()  # the Trainer checks it as it starts
    assert TrainConfig(max_flops=1e12, flops_per_step=1e9).max_flops == 1e12


# -- the trainer under a FLOP budget --------------------------------------------------------------
@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA, masking="dynamic"), corpus_file, cache_dir)


def model_for(variant="bert"):
    torch.manual_seed(0)
    return PretrainingModel(get_config(variant, size="tiny", vocab_size=600, max_position_embeddings=64))


def test_flop_budget_stops_at_the_first_step_reaching_it_and_every_evaluation_records_flops(data):
    F, N = 1000.0, 3500.0  # ceil(3500 / 1000) = 4 steps
    cfg = TrainConfig(batch_size=4, max_flops=N, flops_per_step=F, eval_every=3, eval_points=2, curve_examples=16,
                      eval_batch_size=8, log_every=1)
    trainer = Trainer(model_for(), data, cfg, None, progress_bar=False)
    result = trainer.train()
    assert result.progress.step == math.ceil(N / F) == 4 and result.progress.flops == 4 * F
    assert trainer.fraction_done() == 1.0
    for e in result.evals:  # periodic (step 3), curve and final points alike
        assert e["flops"] == e["step"] * F
    assert [(e["step"], bool(e.get("curve"))) for e in result.evals] == [(2, True), (3, False), (4, True), (4, False)]
    # curve points carry each curve example's MLM loss (summed over its predicted tokens);
    # the last one is taken at the final weights, so it equals the final per-example losses
    curve = [e for e in result.evals if e.get("curve")]
    assert all(len(e["mlm_example_losses"]) == 16 for e in curve)
    final = result.final_eval["eval_mlm_example_loss"][:16]
    assert curve[-1]["mlm_example_losses"] == [float(f"{x:.5g}") for x in final]
    assert curve[0]["mlm_example_losses"] != curve[-1]["mlm_example_losses"]


class Killed(Exception):
    pass


def test_flops_survive_a_resume_and_a_larger_flop_budget_extends_the_run(data, tmp_path):
    cfg = TrainConfig(batch_size=4, max_flops=10000.0, flops_per_step=1000.0, checkpoint_every=1, schedule="wsd",
                      warmup_steps=1)

    def kill_at_2(trainer):
        if trainer.progress.step == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), data, cfg, tmp_path, progress_bar=False, on_step=kill_at_2).train()
    assert load_checkpoint(tmp_path / CHECKPOINT)["progress"]["flops"] == 2000.0
    resumed = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train(until={"max_flops": 3000.0})
    assert resumed.resume["kind"] == "resumed" and resumed.status == "paused" and resumed.progress.flops == 3000.0
    # flops_per_step is a measurement, not part of what made the run: a re-measured value
    # continues it; a larger max_flops extends a stable-phase wsd run, as a larger token budget does
    more = Trainer(model_for(), data, cfg.replace(max_flops=15000.0, flops_per_step=1500.0), tmp_path,
                   progress_bar=False).train()
    assert more.resume["kind"] == "extended" and more.resume["budget_before"]["max_flops"] == 10000.0
    assert more.progress.step == 11 and more.progress.flops == 15000.0 and more.stopped_by == "flops"


# -- run --flops ----------------------------------------------------------------------------------
def test_flops_option_excludes_steps_and_tokens_and_names_them(capsys):
    from ablations.__main__ import main as cli
    from ablations.plan import RunConfig, settle
    from ablations.specs import get_ablation
    from core.train import Budget

    with pytest.raises(ValueError, match="--flops cannot be combined with --tokens"):
        RunConfig(flops=3e12, tokens=1000)
    with pytest.raises(ValueError, match="--flops cannot be combined with --steps or --tokens"):
        RunConfig(flops=3e12, steps=5, tokens=1000)
    assert cli(["run", "objective", "--flops", "3e12", "--steps", "5"]) == 2
    assert "--flops cannot be combined with --steps" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--flops must be >= 1"):
        RunConfig(flops=0.5)
    with pytest.raises(ValueError, match="finite"):
        RunConfig(flops=float("nan"))
    # a time budget may stand beside it, as a safety limit; the arms are matched on FLOPs
    budget = settle(get_ablation("objective"), RunConfig(flops=3e12, time_budget=600)).budget
    assert budget.fields() == {"max_flops": 3e12, "max_seconds": 600} and budget.kind == "flops"
    assert Budget.of({"max_tokens": 10, "max_seconds": 5}).kind == "tokens"


@pytest.mark.slow
def test_run_with_a_flop_budget_gives_every_arm_the_same_compute(tmp_path, corpus_file, cache_dir, monkeypatch):
    import json

    from ablations.__main__ import main as cli
    from ablations.rundir import read_rows

    toml = tmp_path / "compute.toml"
    toml.write_text('name = "compute"\ndescription = "FLOP-matched"\nbase = "bert"\n[[arms]]\nname = "base"\n'
                    '[[arms]]\nname = "narrow"\noverrides = { "model.intermediate_size" = 128 }\n', encoding="utf-8")
    out, N = tmp_path / "run", 2.5e9
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    assert cli(["run", str(toml), "--quick", "--flops", "2.5e9", "--out", str(out), "--corpus", str(corpus_file),
                "--no-progress"]) == 0
    rows = {r.arm: r for r in read_rows(out / "results.jsonl")}
    for r in rows.values():
        assert r.status == "ok" and r.budget_kind == "flops"
        assert r.steps == math.ceil(N / r.flops_per_step) >= 2
        assert r.train_flops == r.steps * r.flops_per_step >= N > r.train_flops - r.flops_per_step
        assert r.config["train.max_flops"] == N and r.config["train.flops_per_step"] == r.flops_per_step
        # one step at the arm's shape (4 x 64) measured: per token and per step agree
        assert r.flops_per_token_measured * 4 * 64 == r.flops_per_step
        assert abs(r.flops_per_token_measured / r.flops_per_token_analytic - 1) < TOLERANCE
        assert all(e.flops == e.step * r.flops_per_step for e in r.evals)
    # the narrower FFN costs less per step, so it takes more steps for the same compute
    assert rows["narrow"].flops_per_step < rows["base"].flops_per_step
    assert rows["narrow"].steps > rows["base"].steps
    assert json.loads((out / "spec.json").read_text())["budget_kind"] == "flops"
    assert "(arms matched on flops)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_every_run_records_its_training_flops(tmp_path, corpus_file, cache_dir):
    from ablations.config import RunConfig
    from ablations.run import run_ablation
    from ablations.rundir import read_rows
    from ablations.specs import AblationSpec, Arm

    spec = AblationSpec("steps", "", "bert", (Arm("base"),))
    run_ablation(spec, RunConfig(corpus=str(corpus_file), quick=True, out=str(tmp_path), cache_dir=str(cache_dir),
                                  progress=False, steps=2))
    (row,) = read_rows(tmp_path / "results.jsonl")
    assert row.budget_kind == "steps" and row.steps == 2
    assert row.flops_per_step > 0 and row.train_flops == 2 * row.flops_per_step
