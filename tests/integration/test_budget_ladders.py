"""Budget ladders (issue 15): the warmup-stable-decay schedule, the rule for continuing a
wsd checkpoint under another budget, and `run --ladder K`: K rows per arm for the price
of one stable phase plus K cooldowns, resumable, each rung the same run as an
independent wsd run of its budget."""
import math
import shutil

import pytest
import torch

import ablations.run.arm as arm_module
from ablations.analysis.verdicts import collect
from ablations.config import RunConfig
from ablations.plan.ladder import Ladder, rung_budgets
from ablations.report import render_report
from ablations.run import run_ablation
from ablations.run.arm import ArmTrainer
from ablations.rundir import read_rows
from ablations.specs import AblationSpec, Arm
from core.data import DataConfig, build_dataset
from core.optim import lr_factor, warmup_stable_decay
from core.train import CHECKPOINT, TrainConfig, Trainer
from variants import build_model


# -- (a) the schedule ------------------------------------------------------------------------------
def test_wsd_warms_up_holds_then_cools_down_as_one_minus_sqrt():
    f = lambda x: warmup_stable_decay(x, 0.1, 0.2)
    assert f(0.05) == pytest.approx(0.5)          # half-way through the warm-up
    assert f(0.1) == f(0.5) == f(0.8) == 1.0       # stable up to and including the cooldown's start
    assert f(0.85) == pytest.approx(0.5)           # 1 - sqrt(0.05 / 0.2)
    assert f(0.8 + 0.2 * 0.64) == pytest.approx(0.2)  # 1 - sqrt(0.64)
    assert f(1.0) == 0.0
    # warmup_steps: a ramp over steps, whatever the budget; the stable phase does not see the budget
    assert lr_factor("wsd", 0.5, 0.06, 0.2, step=5, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor("wsd", 0.01, 0.06, 0.2, step=20, warmup_steps=10) == 1.0
    assert lr_factor("wsd", 0.9, 0.06, 0.2, step=90, warmup_steps=10) == pytest.approx(1 - math.sqrt(0.5))
    assert lr_factor("linear", 0.5, 0.06, 0.2, step=20, warmup_steps=10) == pytest.approx(0.5)


def test_schedule_fields_are_validated_with_the_conflict_named():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'.*linear, wsd"):
        TrainConfig(max_steps=1, schedule="cosine")
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="decay is the cooldown's fraction"):
            TrainConfig(max_steps=1, decay=bad)
    with pytest.raises(ValueError, match=r"warmup 0.9 \+ decay 0.2 >= 1"):
        TrainConfig(max_steps=1, schedule="wsd", warmup=0.9)
    TrainConfig(max_steps=1, schedule="wsd", warmup=0.9, warmup_steps=3)  # an absolute warm-up: no conflict
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        TrainConfig(max_steps=1, warmup_steps=-1)


def test_rung_budgets_are_geometric_and_end_at_the_budget():
    assert rung_budgets({"max_tokens": 60_000}, 3) == [{"max_tokens": 15_000}, {"max_tokens": 30_000},
                                                      {"max_tokens": 60_000}]
    assert rung_budgets({"max_steps": 100, "max_seconds": 9.0}, 3, 3.0) == [
        {"max_steps": 11, "max_seconds": 1.0}, {"max_steps": 33, "max_seconds": 3.0},
        {"max_steps": 100, "max_seconds": 9.0}]
    with pytest.raises(ValueError, match="at least 3 budgets"):
        RunConfig(ladder=2)
    ladder = Ladder.of(TrainConfig(max_steps=16, schedule="wsd", decay=0.25), 3, 2.0)
    assert ladder.rung(0).max_steps == 4 and ladder.branch_point(1) == {"max_steps": 6.0}


def test_a_ladder_resolves_to_wsd_with_a_warm_up_in_steps():
    from ablations.plan import settle
    from ablations.plan.resolve import resolve_arm

    spec = AblationSpec(name="t", description="", base="roberta",
                        arms=(Arm("base"), Arm("lin", {"train.schedule": "linear"})))
    opts = RunConfig(quick=True, tokens=64_000, ladder=3)
    settings = settle(spec, opts)
    res = resolve_arm(spec, spec.arms[0], settings, "fp")
    # 6% of the smallest rung (16,000 tokens at 4 x 64 tokens per step: 62.5 steps) = 4 steps
    assert res.train.schedule == "wsd" and res.train.warmup_steps == 4
    assert res.key != resolve_arm(spec, spec.arms[0], settle(spec, RunConfig(quick=True, tokens=64_000)), "fp").key
    with pytest.raises(ValueError, match="train.schedule='linear' cannot branch"):
        resolve_arm(spec, spec.arms[1], settings, "fp")
    timed = RunConfig(quick=True, time_budget=60, ladder=3)
    with pytest.raises(ValueError, match="set train.warmup_steps"):
        resolve_arm(spec, spec.arms[0], settle(spec, timed), "fp")


# -- the resume rule -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    """test_training's data (the cache is shared): dynamic masking, so that masks follow the data position."""
    return build_dataset(DataConfig(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=64,
                                    masking="dynamic"), corpus_file, cache_dir)


def model_for():
    torch.manual_seed(0)
    return build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64)


WSD = TrainConfig(batch_size=4, max_steps=8, schedule="wsd", decay=0.25, warmup_steps=1, lr=1e-3)


def test_a_stable_wsd_checkpoint_extends_and_a_cooled_one_restarts(data, tmp_path):
    paused = Trainer(model_for(), data, WSD, tmp_path / "a", progress_bar=False).train(until={"max_steps": 5})
    assert paused.status == "paused" and paused.progress.step == 5 and paused.final_eval == {}
    # step 5's rate was set at step 4: 4/8 <= 0.75, stable under the old budget and the new one
    more = Trainer(model_for(), data, WSD.replace(max_steps=10), tmp_path / "a", progress_bar=False).train()
    assert more.resume["kind"] == "extended" and more.resume["from_step"] == 5 and more.progress.step == 10
    # a finished wsd run has cooled down: it is not on a longer run's trajectory
    Trainer(model_for(), data, WSD, tmp_path / "b", progress_bar=False).train()
    again = Trainer(model_for(), data, WSD.replace(max_steps=10), tmp_path / "b", progress_bar=False).train()
    assert again.resume["kind"] == "restarted" and "entered its cooldown" in again.resume["reason"]
    assert again.progress.step == 10
    # a fractional warm-up stretches with the budget: not one trajectory either
    frac = WSD.replace(warmup_steps=0, warmup=0.25)
    Trainer(model_for(), data, frac, tmp_path / "c", progress_bar=False).train(until={"max_steps": 3})
    other = Trainer(model_for(), data, frac.replace(max_steps=10), tmp_path / "c", progress_bar=False).train()
    assert other.resume["kind"] == "restarted" and "set warmup_steps" in other.resume["reason"]


def test_a_branched_cooldown_is_the_independent_run_of_that_budget(data, tmp_path):
    """The stable run (budget 16) paused at budget 8's cooldown start (6 steps) and cooled
    down to 8 equals a fresh wsd run of 8 steps exactly on CPU: every step had the same
    rate (warm-up in steps, then 1.0), data order and dropout RNG (restored from the
    checkpoint), so the weights, losses and held-out scores are the same numbers."""
    long = WSD.replace(max_steps=16)
    Trainer(model_for(), data, long, tmp_path / "stable", progress_bar=False).train(until={"max_steps": 6})
    (tmp_path / "rung").mkdir()
    shutil.copyfile(tmp_path / "stable" / CHECKPOINT, tmp_path / "rung" / CHECKPOINT)
    rung = Trainer(model_for(), data, WSD, tmp_path / "rung", progress_bar=False).train()
    alone = Trainer(model_for(), data, WSD, tmp_path / "alone", progress_bar=False).train()
    assert rung.resume["kind"] == "branched" and rung.resume["from_step"] == 6
    assert rung.train_loss == alone.train_loss
    assert rung.final_eval["eval_mlm_loss"] == pytest.approx(alone.final_eval["eval_mlm_loss"], abs=1e-6)


# -- (b), (c), (d) the ladder run ------------------------------------------------------------------
SPEC = AblationSpec(name="tiny_ladder", description="a ladder on two arms", base="roberta",
                    arms=(Arm("base"), Arm("slow", {"train.lr": 5e-4})), base_overrides={"train.decay": 0.25})


def options(tmp_path, corpus_file, cache_dir, **kw) -> RunConfig:
    return RunConfig(corpus=str(corpus_file), quick=True, out=str(tmp_path), cache_dir=str(cache_dir),
                      progress=False, **kw)


@pytest.fixture
def counted(monkeypatch):
    """Optimizer steps per training directory; no speed or memory measurement (not what is tested)."""
    steps: dict[str, int] = {}
    update = Trainer._update

    def counting(self):
        steps[self.out_dir.name] = steps.get(self.out_dir.name, 0) + 1
        update(self)

    monkeypatch.setattr(Trainer, "_update", counting)
    monkeypatch.setattr(ArmTrainer, "measurements", lambda self, res, speed, tokens_per_s=None: {})
    monkeypatch.setattr("ablations.run.runner.time_side_by_side", lambda *args, **kw: None)
    return steps


@pytest.mark.slow
def test_ladder_rows_resume_and_equal_independent_runs(tmp_path, corpus_file, cache_dir, counted, monkeypatch):
    fit = arm_module.fit

    def killed_in_rung_1(model_cfg, data, eval_data, train_cfg, ckpt_dir, progress, until=None, tracking=None):
        if train_cfg.max_steps == 8 and until is None:  # base's rung 1, after its branch was copied
            raise KeyboardInterrupt
        return fit(model_cfg, data, eval_data, train_cfg, ckpt_dir, progress, until, tracking)

    out = tmp_path / "ladder"
    monkeypatch.setattr(arm_module, "fit", killed_in_rung_1)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(SPEC, options(out, corpus_file, cache_dir, steps=16, ladder=3))
    assert [(r.arm, r.rung) for r in read_rows(out / "results.jsonl")] == [("base", 0)]
    assert counted == {"seed-0": 6, "rung-0": 1}  # stable to 3, rung 0's cooldown, stable 3 -> 6
    monkeypatch.setattr(arm_module, "fit", fit)
    run_ablation(SPEC, options(out, corpus_file, cache_dir, steps=16, ladder=3))
    render_report(out)

    rows = read_rows(out / "results.jsonl")
    for name in ("base", "slow"):
        mine = [r for r in rows if r.arm == name]
        assert [r.rung for r in mine] == [0, 1, 2] and all(r.status == "ok" for r in mine)
        assert [r.rung_budget for r in mine] == [4, 8, 16] == [r.steps for r in mine]
        assert [r.branch_step for r in mine] == [3, 6, 12]  # (1 - decay) x budget
        assert {r.ladder for r in mine} == {3} and {r.rung_budget_unit for r in mine} == {"steps"}
        assert mine[0].config["train.schedule"] == "wsd" and mine[0].config["train.warmup_steps"] == 1
    # (c) nothing retrained: the stable run took 12 steps in all (0 -> 3 -> 6 in the killed run, 6 -> 12
    # after), each rung only its cooldown: 12 + 1 + 2 + 4 = 19 per arm, not 4 + 8 + 16 = 28
    assert counted == {"seed-0": 12 + 12, "rung-0": 1 + 1, "rung-1": 2 + 2, "rung-2": 4 + 4}
    base = {r.rung: r for r in rows if r.arm == "base"}
    assert base[1].resume.kind == "branched" and base[1].resume.from_step == 6
    # the report's tables read each arm's largest rung
    arms = collect(rows)
    assert arms["base"].rows[0] is not None and arms["base"].rows[0].rung == 2
    assert f"{base[2].eval_mlm_loss:.3f}" in (out / "report.md").read_text()
    assert not (out / "arms" / "base" / "seed-0" / CHECKPOINT).exists()  # the stable checkpoint went at the end
    assert (out / "arms" / "base" / "seed-0" / "model.safetensors").is_file()  # the largest rung's weights stay

    # (d) rung 1 (8 steps; its stable part trained before the kill, its cooldown after) is the same run as an
    # independent wsd run of 8 steps with the same warm-up: same losses at every step, same held-out loss
    alone_spec = AblationSpec(name="tiny_alone", description="", base="roberta", arms=(Arm("base"),),
                              base_overrides={"train.decay": 0.25, "train.schedule": "wsd", "train.warmup_steps": 1})
    run_ablation(alone_spec, options(tmp_path / "alone", corpus_file, cache_dir, steps=8))
    alone = read_rows(tmp_path / "alone" / "results.jsonl")[0]
    assert [t for t, *_ in base[1].train_loss] == [t for t, *_ in alone.train_loss]  # the same batches
    assert [p[1] for p in base[1].train_loss] == pytest.approx([p[1] for p in alone.train_loss], abs=1e-6)
    assert base[1].eval_mlm_loss == pytest.approx(alone.eval_mlm_loss, abs=1e-6)
