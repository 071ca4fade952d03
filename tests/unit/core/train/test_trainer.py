"""Trainer: exact resume, NaN stop, checkpoint safety, budgets, schedule."""
import math

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.train import CHECKPOINT, CheckpointError, TrainConfig, Trainer, load_checkpoint
from variants import get_config

DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=64)


@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA, masking="dynamic"), corpus_file, cache_dir)


def model_for(variant="bert", **kw):
    torch.manual_seed(0)
    return PretrainingModel(get_config(variant, size="tiny", vocab_size=600, max_position_embeddings=64, **kw))


class Killed(Exception):
    pass


def test_resume_reproduces_an_uninterrupted_run_exactly(data, tmp_path):
    cfg = TrainConfig(batch_size=8, max_steps=6, log_every=1, checkpoint_every=1, eval_every=0)
    full = Trainer(model_for(), data, cfg, tmp_path / "full", progress_bar=False).train()

    def kill_at_3(trainer):
        if trainer.progress.step == 3:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), data, cfg, tmp_path / "resumed", progress_bar=False, on_step=kill_at_3).train()
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["progress"]["step"] == 3
    # a fresh process would build a fresh model: its weights are replaced by the checkpoint's
    torch.manual_seed(999)
    resumed = Trainer(model_for(), data, cfg, tmp_path / "resumed", progress_bar=False).train()
    assert resumed.train_loss == full.train_loss  # exact equality, dropout and masks included
    assert resumed.final_eval == full.final_eval
    assert resumed.progress.step == 6


def test_nan_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    def poison_at_2(trainer):
        if trainer.progress.step == 2:
            with torch.no_grad():
                trainer.model.embeddings.word.weight[:] = float("nan")

    cfg = TrainConfig(batch_size=8, max_steps=10, checkpoint_every=1)
    result = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False, on_step=poison_at_2).train()
    assert result.status == "nan" and "step 3" in result.error and "step 2" in result.error
    # the checkpoint on disk is the one saved after step 2, before the poisoning
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["progress"]["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_corrupted_or_truncated_checkpoints_get_a_clear_error(data, tmp_path):
    cfg = TrainConfig(batch_size=8, max_steps=1)
    Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    path = tmp_path / CHECKPOINT
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is corrupted or truncated"):
        Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="Delete it to start the run over"):
        load_checkpoint(path)


def test_checkpoint_of_another_configuration_is_never_continued(data, tmp_path):
    """A changed lr (or model) starts over, says why, and equals a fresh run exactly."""
    cfg = TrainConfig(batch_size=8, max_steps=4, checkpoint_every=1, lr=1e-3)

    def kill_at_2(trainer):
        if trainer.progress.step == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), data, cfg, tmp_path / "a", progress_bar=False, on_step=kill_at_2).train()
    changed = cfg.replace(lr=5e-4)
    again = Trainer(model_for(), data, changed, tmp_path / "a", progress_bar=False).train()
    assert again.resume["kind"] == "restarted"
    assert "train.lr 0.001 -> 0.0005" in again.resume["reason"] and "starting over" in again.resume["reason"]
    fresh = Trainer(model_for(), data, changed, tmp_path / "b", progress_bar=False).train()
    assert again.train_loss == fresh.train_loss and again.progress.step == 4
    other = Trainer(model_for("albert"), data, changed, tmp_path / "a", progress_bar=False).train()
    assert other.resume["kind"] == "restarted" and "model.sharing 'none' -> 'all'" in other.resume["reason"]


def test_a_checkpoint_of_another_budget_restarts_a_linear_run_and_says_why(data, tmp_path):
    """Issue 30, finding 1: a 5-step checkpoint of a 10-step run, resumed under 2 steps, was
    continued (the row said 2 steps and had trained 5); a larger budget continued it too,
    though the linear decay gave every step taken another rate."""
    cfg = TrainConfig(batch_size=8, max_steps=10, checkpoint_every=1)

    def kill_at_5(trainer):
        if trainer.progress.step == 5:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), data, cfg, tmp_path / "a", progress_bar=False, on_step=kill_at_5).train()
    smaller = Trainer(model_for(), data, cfg.replace(max_steps=2), tmp_path / "a", progress_bar=False).train()
    assert smaller.resume["kind"] == "restarted" and "(step 5) was made under the budget max_steps=10" in \
        smaller.resume["reason"] and smaller.resume["reason"].endswith("starting over")
    fresh = Trainer(model_for(), data, cfg.replace(max_steps=2), tmp_path / "b", progress_bar=False).train()
    assert smaller.progress.step == 2 and smaller.progress.tokens == fresh.progress.tokens
    assert smaller.train_loss == fresh.train_loss
    larger = Trainer(model_for(), data, cfg.replace(max_steps=3), tmp_path / "b", progress_bar=False).train()
    assert larger.resume["kind"] == "restarted" and larger.progress.step == 3 and len(larger.step_times) == 3


def test_a_larger_budget_continues_a_stable_phase_wsd_run_and_says_so(data, tmp_path):
    cfg = TrainConfig(batch_size=8, max_steps=10, schedule="wsd", warmup_steps=1)
    paused = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train(until={"max_steps": 4})
    assert paused.status == "paused"
    more = Trainer(model_for(), data, cfg.replace(max_steps=20), tmp_path, progress_bar=False).train()
    assert more.resume == {"kind": "extended", "from_step": 4,
                           "budget_before": {"max_steps": 10}}
    assert more.progress.step == 20 and more.stopped_by == "steps"


def test_a_finished_run_run_again_trains_nothing_and_reuses_its_final_evaluation(data, tmp_path, monkeypatch):
    """Issue 30, item 5: the checkpoint is written before the final evaluation, and holds it."""
    import core.train.trainer as trainer_module

    cfg = TrainConfig(batch_size=8, max_steps=3, eval_points=2)
    finals = []
    real = trainer_module.evaluate

    def failing_once(*args, **kw):
        if "mlm_limit" not in kw:  # the final evaluation (curve points pass a limit)
            finals.append(1)
            if len(finals) == 1:
                raise RuntimeError("evaluation failed")
        return real(*args, **kw)

    monkeypatch.setattr(trainer_module, "evaluate", failing_once)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    from core.train import finished_training

    assert finished_training(tmp_path / CHECKPOINT)
    again = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    assert again.resume == {"kind": "resumed", "from_step": 3} and again.step_times == []
    assert sum(1 for e in again.evals if e.get("curve") and e["step"] == 3) == 1
    third = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    assert third.final_eval == again.final_eval and third.evals == again.evals  # taken once, kept
    monkeypatch.setattr(trainer_module, "evaluate", real)
    fresh = Trainer(model_for(), data, cfg, tmp_path / "fresh", progress_bar=False).train()
    assert again.final_eval["eval_mlm_loss"] == fresh.final_eval["eval_mlm_loss"]


def test_nan_stopped_run_with_a_changed_config_starts_over(data, tmp_path):
    def poison_at_1(trainer):
        if trainer.progress.step == 1:
            with torch.no_grad():
                trainer.model.embeddings.word.weight[:] = float("nan")

    cfg = TrainConfig(batch_size=8, max_steps=3, checkpoint_every=1)
    assert Trainer(model_for(), data, cfg, tmp_path, progress_bar=False, on_step=poison_at_1).train().status == "nan"
    fixed = Trainer(model_for(), data, cfg.replace(lr=1e-4), tmp_path, progress_bar=False).train()
    assert fixed.status == "ok" and fixed.resume["kind"] == "restarted" and fixed.progress.step == 3


def test_token_budget_and_evaluation(data):
    cfg = TrainConfig(batch_size=8, max_tokens=3000, log_every=1, eval_every=2)
    result = Trainer(model_for("albert"), data, cfg, None, progress_bar=False).train()
    tokens = [t for t, *_ in result.train_loss]
    assert tokens[-1] >= 3000 > tokens[-2]
    final = result.final_eval
    assert final["eval_mlm_loss"] > 0 and 0 <= final["eval_mlm_acc"] <= 1
    # a model with a sentence head is scored on both NSP and SOP pairs
    assert final["eval_nsp_acc"] is not None and final["eval_sop_acc"] is not None
    steps = len(tokens)  # log_every=1: one point per step
    assert len(result.evals) == (steps - 1) // 2 + 1  # every 2 steps, plus the final one


def test_model_without_sentence_head_has_no_sentence_scores(corpus_file, cache_dir):
    data = build_dataset(DataConfig(**DATA, packing="full-sentences", sentence_task="none"), corpus_file, cache_dir)
    result = Trainer(model_for("roberta"), data, TrainConfig(batch_size=8, max_steps=2), None, progress_bar=False).train()
    assert result.final_eval["eval_nsp_acc"] is None and result.final_eval["eval_sentence_acc"] is None
    assert math.isfinite(result.final_eval["eval_mlm_loss"])


def test_a_model_without_segment_embeddings_reads_segment_pair_examples_as_one_sequence(data):
    """RoBERTa (type_vocab_size 1) scored on BERT's held-out segment pairs (token types 0
    and 1), as the runner does to keep arms paired: the same loss as with every type 0."""
    from core.train import evaluate

    model = model_for("roberta")
    assert any(int(b["token_type_ids"].max()) == 1 for b in data.eval_batches("mlm", 8))
    got = evaluate(model, data, torch.device("cpu"), per_example=True)

    class Zeroed:  # the same examples with every token type 0
        def eval_batches(self, task, batch_size, limit=None):
            for b in data.eval_batches(task, batch_size, limit):
                yield {**b, "token_type_ids": torch.zeros_like(b["token_type_ids"])}

    want = evaluate(model, Zeroed(), torch.device("cpu"), per_example=True)
    assert got["eval_mlm_example_loss"] == want["eval_mlm_example_loss"] and got["eval_nsp_acc"] is None


def test_evaluation_is_identical_for_lsh_models(data):
    from core.train import evaluate

    model = model_for("bert-lsh", lsh_bucket_size=8)
    a = evaluate(model, data, torch.device("cpu"))
    b = evaluate(model, data, torch.device("cpu"))
    assert a == b


def test_schedule_warms_up_then_decays_to_zero(data):
    trainer = Trainer(model_for(), data, TrainConfig(max_steps=100, warmup=0.1), None, progress_bar=False)
    factors = []
    for step in range(0, 101, 5):
        trainer.progress.step = step
        factors.append(trainer.lr_factor())
    assert factors[1] == pytest.approx(0.5) and factors[2] == pytest.approx(1.0)
    assert factors[-1] == 0.0 and all(a >= b for a, b in zip(factors[2:], factors[3:]))


def test_budget_is_required():
    with pytest.raises(ValueError, match="set a budget"):
        TrainConfig()


def test_a_checkpoint_that_wrote_0_for_an_unset_budget_still_resumes(data, tmp_path):
    """Unset is None in every budget now; a checkpoint of the version before wrote 0."""
    cfg = TrainConfig(batch_size=8, max_steps=4, checkpoint_every=1)

    def kill_at_2(trainer):
        if trainer.progress.step == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), data, cfg, tmp_path, progress_bar=False, on_step=kill_at_2).train()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["budget"] == {"max_flops": None, "max_tokens": None, "max_steps": 4, "max_seconds": None}
    state["budget"] = {"max_steps": 4, "max_tokens": 0, "max_seconds": 0.0, "max_flops": 0.0}
    torch.save(state, tmp_path / CHECKPOINT)
    resumed = Trainer(model_for(), data, cfg, tmp_path, progress_bar=False).train()
    assert resumed.resume == {"kind": "resumed", "from_step": 2} and resumed.progress.step == 4
