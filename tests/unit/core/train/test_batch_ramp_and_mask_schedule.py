"""The training recipe beyond the optimizer (issue 35): the batch-size ramp (exact token
counts, the same examples as a fixed batch, the rate and the FLOPs following tokens, exact
resume), the masking-rate schedule (its endpoints, the rate each step draws its masks at, the
held-out masks untouched) and the ablations that use them (lr search on by default)."""
import math

import numpy as np
import pytest
import torch

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.optim import batch_ramp, warmup_linear_decay
from core.train import TrainConfig, Trainer
from core.train.checkpoint import budget_change_refusal
from variants import get_config

DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=32, masking="dynamic")


@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA), corpus_file, cache_dir)


@pytest.fixture(scope="module")
def scheduled(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA, mask_prob=0.3, mask_prob_end=0.15), corpus_file, cache_dir)


def model_for():
    torch.manual_seed(0)
    return PretrainingModel(get_config("bert", size="tiny", vocab_size=600, max_position_embeddings=64))


class Recorder:
    """What the trainer asked the data for: each collated batch's example indices, epoch and
    masking rate, grouped by the optimizer step they were taken in."""

    def __init__(self, data, monkeypatch):
        self.calls, self.steps = [], []
        collate = data.collate

        def recording(es, indices, epoch=0, copy=None, mask_prob=None):
            if es is data.train:
                self.calls.append((np.asarray(indices).copy(), epoch, mask_prob))
            return collate(es, indices, epoch=epoch, copy=copy, mask_prob=mask_prob)

        monkeypatch.setattr(data, "collate", recording)

    def on_step(self, trainer):
        p = trainer.progress
        self.steps.append({"calls": self.calls, "tokens": p.tokens, "flops": p.flops,
                           "lr": [g["lr"] for g in trainer.optimizer.param_groups]})
        self.calls = []


def stream(data, batch_size: int):
    """The training examples in the order a fixed-batch run reads them: each epoch's order cut
    to whole batches, epochs end to end."""
    length = data.batches_per_epoch(batch_size) * batch_size
    for epoch in range(100):
        yield from data.epoch_order(epoch)[:length]


def lengths(data, indices) -> int:
    return int(sum(np.diff(data.train.offsets)[i] for i in indices))


# -- the batch ramp -------------------------------------------------------------------------------------
@pytest.mark.parametrize("by, batch_size, grad_accum", [("batch", 8, 1), ("accum", 2, 4)])
def test_a_batch_ramp_takes_the_scheduled_examples_and_counts_every_token(data, monkeypatch, by, batch_size,
                                                                          grad_accum):
    budget, warmup, start = 6_000, 0.5, 0.25
    cfg = TrainConfig(batch_size=batch_size, grad_accum=grad_accum, max_tokens=budget, batch_size_warmup=warmup,
                      batch_size_warmup_start=start, batch_size_warmup_by=by, warmup=0.0, log_every=1,
                      flops_per_step=1000.0)
    rec = Recorder(data, monkeypatch)
    result = Trainer(model_for(), data, cfg, progress_bar=False, on_step=rec.on_step).train()
    assert result.status == "ok" and result.stopped_by == "tokens"
    full = batch_size * grad_accum
    before, taken, sizes = 0, [], []
    for step in rec.steps:
        share = batch_ramp(before / budget, warmup, start)
        k, b = (math.floor(grad_accum * share + 0.5), batch_size) if by == "accum" else \
            (grad_accum, math.floor(batch_size * share + 0.5))
        assert [len(idx) for idx, _, _ in step["calls"]] == [b] * k  # the ramp's shape at the tokens seen so far
        indices = np.concatenate([idx for idx, _, _ in step["calls"]])
        assert step["tokens"] - before == lengths(data, indices)  # every token of those examples, no other
        taken.append(indices)
        # FLOPs count each step's share of a full step's (flops_per_step is measured at the full batch)
        assert step["flops"] == pytest.approx(1000.0 * sum(len(t) for t in taken) / full)
        sizes.append(len(indices))
        before = step["tokens"]
    # it read the fixed-batch stream from its start, in smaller steps at first
    every = np.concatenate(taken)
    assert list(every) == [int(i) for i, _ in zip(stream(data, batch_size), range(len(every)), strict=False)]
    assert sizes[0] == round(full * start) and sizes[-1] == full and sizes == sorted(sizes)
    # the budget is met as a fixed batch meets it: the step that crosses it is the last
    assert result.progress.tokens == before >= budget > before - lengths(data, taken[-1])


def test_a_ramp_that_starts_full_is_the_fixed_batch_run(data):
    """The ramp's stream of examples is the fixed-batch run's: starting at the full batch,
    the two runs are one trajectory to the last digit."""
    cfg = dict(batch_size=8, max_steps=3, log_every=1)
    fixed = Trainer(model_for(), data, TrainConfig(**cfg), progress_bar=False).train()
    ramp = Trainer(model_for(), data, TrainConfig(**cfg, batch_size_warmup=0.5, batch_size_warmup_start=1.0),
                   progress_bar=False).train()
    assert ramp.train_loss == fixed.train_loss and ramp.final_eval == fixed.final_eval


def test_under_a_ramp_the_rate_follows_tokens_not_steps(data, monkeypatch):
    budget = 5_000
    cfg = TrainConfig(batch_size=8, max_tokens=budget, batch_size_warmup=0.6, batch_size_warmup_start=0.125,
                      warmup=0.2, lr=1e-3, log_every=1)
    rec = Recorder(data, monkeypatch)
    Trainer(model_for(), data, cfg, progress_bar=False, on_step=rec.on_step).train()
    before = 0
    for step in rec.steps:
        assert step["lr"][0] == pytest.approx(1e-3 * warmup_linear_decay(before / budget, 0.2))
        before = step["tokens"]
    assert len(rec.steps) > math.ceil(budget / (8 * 64))  # more steps than a fixed batch: the ramp's small ones


def test_a_killed_ramped_run_with_a_masking_schedule_resumes_exactly(scheduled, tmp_path):
    cfg = TrainConfig(batch_size=8, max_tokens=3_000, batch_size_warmup=0.5, batch_size_warmup_start=0.25,
                      log_every=1, checkpoint_every=1)
    full = Trainer(model_for(), scheduled, cfg, tmp_path / "full", progress_bar=False).train()

    class Killed(Exception):
        pass

    def kill(trainer):
        if trainer.progress.step == 3:
            raise Killed

    with pytest.raises(Killed):
        Trainer(model_for(), scheduled, cfg, tmp_path / "resumed", progress_bar=False, on_step=kill).train()
    torch.manual_seed(999)
    resumed = Trainer(model_for(), scheduled, cfg, tmp_path / "resumed", progress_bar=False).train()
    assert resumed.resume == {"kind": "resumed", "from_step": 3}
    assert resumed.train_loss == full.train_loss and resumed.final_eval == full.final_eval
    assert resumed.progress.example == full.progress.example and resumed.progress.tokens == full.progress.tokens


@pytest.mark.parametrize("bad, message", [
    ({"batch_size_warmup": 1.0}, "batch_size_warmup is the fraction"),
    ({"batch_size_warmup": 0.5, "batch_size_warmup_start": 0}, "batch_size_warmup_start"),
    ({"batch_size_warmup": 0.5, "batch_size_warmup_by": "accum"}, "needs grad_accum >= 2"),
    ({"batch_size_warmup": 0.5, "warmup_steps": 10}, "warm-up counted in steps"),
    ({"batch_size_warmup_by": "tokens"}, "batch_size_warmup_by"),
])
def test_a_bad_ramp_is_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(max_steps=1, **bad)


# -- the masking-rate schedule ------------------------------------------------------------------------------
def test_the_masking_schedule_runs_from_mask_prob_to_mask_prob_end():
    cfg = DataConfig(**DATA, mask_prob=0.3, mask_prob_end=0.15)
    assert cfg.mask_prob_at(0.0) == 0.3 and cfg.mask_prob_at(1.0) == 0.15
    assert cfg.mask_prob_at(0.5) == pytest.approx(0.225) and cfg.mask_prob_at(2.0) == 0.15
    assert cfg.max_predictions == math.ceil(64 * 0.3)  # room for the schedule's highest rate
    rising = DataConfig(**DATA, mask_prob=0.1, mask_prob_end=0.4)
    assert rising.max_predictions == math.ceil(64 * 0.4)
    constant = DataConfig(**DATA)
    assert constant.mask_prob_at(0.7) == constant.mask_prob and "mask_prob_end" not in constant.to_dict()
    with pytest.raises(ValueError, match="masking='dynamic'"):
        DataConfig(**{**DATA, "masking": "static"}, mask_prob_end=0.15)
    with pytest.raises(ValueError, match="mask_prob_end must be in"):
        DataConfig(**DATA, mask_prob_end=1.5)


def test_the_collator_masks_at_the_rate_it_is_given(scheduled):
    """At each end of the schedule a sequence has round(candidates x rate) positions masked."""
    idx = np.arange(16)
    ids = [scheduled.train.example(int(i)).astype(np.int64) for i in idx]
    for rate in (0.3, 0.15):
        labels = scheduled.collate(scheduled.train, idx, epoch=0, mask_prob=rate)["mlm_labels"]
        for row, seq in zip(labels, ids, strict=True):
            expected = min(scheduled.cfg.max_predictions, max(1, round(int((seq >= 5).sum()) * rate)))
            assert int((row != -100).sum()) == expected


def test_each_step_draws_its_masks_at_the_scheduled_rate(scheduled, monkeypatch):
    budget = 5_000
    rec = Recorder(scheduled, monkeypatch)
    Trainer(model_for(), scheduled, TrainConfig(batch_size=8, max_tokens=budget, log_every=1), progress_bar=False,
            on_step=rec.on_step).train()
    before = 0
    for step in rec.steps:
        rates = [rate for _, _, rate in step["calls"]]
        assert rates == pytest.approx([0.3 + (0.15 - 0.3) * before / budget] * len(rates))
        before = step["tokens"]
    assert rec.steps[0]["calls"][0][2] == 0.3  # the first step at mask_prob exactly
    # the last within one step (at most 8 x 64 tokens) of mask_prob_end
    assert 0.15 < rec.steps[-1]["calls"][0][2] <= 0.15 + 0.15 * 8 * 64 / budget


def test_the_held_out_masks_ignore_the_schedule(scheduled, corpus_file, cache_dir):
    """Every arm is scored on the same 15% masks: a 30% -> 15% schedule's held-out set is the
    15% arm's, example by example and mask by mask."""
    at15 = build_dataset(DataConfig(**DATA, mask_prob=0.15), corpus_file, cache_dir)
    assert scheduled.cfg.for_evaluation() == at15.cfg.for_evaluation()
    for a, b in zip(scheduled.eval_batches("mlm", 16), at15.eval_batches("mlm", 16), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "mlm_labels"))


# -- schedules over the budget ------------------------------------------------------------------------------
def test_a_schedule_over_the_budget_is_not_continued_under_another_budget():
    state = {"budget": {"max_steps": 10}, "progress": {"step": 2, "tokens": 0, "seconds": 0.0, "flops": 0.0}}
    wsd = dict(max_steps=10, schedule="wsd", warmup=0.0)
    assert budget_change_refusal(TrainConfig(**wsd), state, {"max_steps": 20}) is None  # the plain stable phase goes on
    assert "batch ramp" in budget_change_refusal(TrainConfig(**wsd, batch_size_warmup=0.3), state, {"max_steps": 20})
    why = budget_change_refusal(TrainConfig(**wsd), state, {"max_steps": 20},
                                DataConfig(**DATA, mask_prob=0.3, mask_prob_end=0.15))
    assert "masking rate going from 0.3 to 0.15" in why


# -- the ablations ---------------------------------------------------------------------------------------------
def test_the_recipe_ablations_search_each_arms_rate_by_default(monkeypatch):
    from ablations.config import RunConfig, settle
    from ablations.run import stages
    from ablations.specs import get_ablation
    from ablations.specs.catalogue.recipe import ADAMW_GRID, OPTIMIZER_GRID

    spec = get_ablation("optimizer")
    for name, grid in (("optimizer", OPTIMIZER_GRID), ("batch_ramp", ADAMW_GRID), ("mask_schedule", ADAMW_GRID)):
        on = settle(get_ablation(name), RunConfig())
        assert on.lr_search and on.lr_grid == grid and on.lr_search_fraction == 0.5, name
    assert settle(spec, RunConfig(lr_grid="0.1,1,10")).lr_grid == "0.1,1,10"  # a flag wins
    assert settle(spec, RunConfig(lr_search_fraction=0.25)).lr_search_fraction == 0.25
    assert settle(get_ablation("masking_rate"), RunConfig(lr_search=True)).lr_search_fraction == 0.25  # the default
    assert not settle(spec, RunConfig(lr=1e-3)).lr_search  # one rate for every arm: no search
    assert not settle(get_ablation("masking_rate"), RunConfig()).lr_search  # only where the ablation says so
    assert settle(get_ablation("masking_rate"), RunConfig(lr_search=True)).lr_search
    searched = []
    monkeypatch.setattr(stages, "search_rates", lambda spec, config, console=None: searched.append(spec.name))
    monkeypatch.setattr(stages, "make_plan", lambda spec, config: None)
    monkeypatch.setattr(stages, "run_plan", lambda plan, console=None: None)
    stages.run_ablation(spec, RunConfig())
    stages.run_ablation(spec, RunConfig(lr=1e-3))
    stages.run_ablation(get_ablation("mask_schedule"), RunConfig())
    stages.run_ablation(get_ablation("masking_rate"), RunConfig())
    assert searched == ["optimizer", "mask_schedule"]


def test_a_toml_ablation_may_turn_the_search_on(tmp_path):
    from ablations.config import RunConfig, settle
    from ablations.specs import get_ablation

    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nbase = "bert"\n[defaults]\nlr_search = true\nlr_grid = "0.5,1,2,4"\n'
                    '[[arms]]\nname = "a"\n')
    config = settle(get_ablation(str(path)), RunConfig())
    assert config.lr_search and config.lr_grid == "0.5,1,2,4"
    path.write_text('name = "mine"\nbase = "bert"\n[defaults]\nlr_search = "yes"\n[[arms]]\nname = "a"\n')
    with pytest.raises(ValueError, match="lr_search must be true or false"):
        settle(get_ablation(str(path)), RunConfig())


def test_the_recipe_arms_resolve_to_what_they_say():
    from ablations.config import RunConfig, settle
    from ablations.plan import resolve_arm
    from ablations.specs import get_ablation

    def resolved(name):
        spec = get_ablation(name)
        config = settle(spec, RunConfig())
        return {a.name: resolve_arm(spec, a, config, "fp") for a in spec.arms}

    opt = resolved("optimizer")
    assert {n: r.train.optimizer for n, r in opt.items()} == {n: n for n in opt}
    assert len({r.key for r in opt.values()}) == 4
    ramp = resolved("batch_ramp")
    assert [(r.train.batch_size_warmup, r.train.batch_size_warmup_start) for r in ramp.values()] == \
        [(0.0, 0.25), (0.1, 0.25), (0.6, 0.125)]
    assert {r.train.max_tokens for r in ramp.values()} == {550_000}  # equal tokens
    mask = resolved("mask_schedule")
    assert [(r.data.mask_prob, r.data.mask_prob_end) for r in mask.values()] == [(0.15, None), (0.3, None),
                                                                                  (0.3, 0.15)]
    assert len({r.data.for_evaluation() for r in mask.values()}) == 1  # one held-out set for all three
