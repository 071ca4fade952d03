"""Issue 30: failures are one line, a finished training is never thrown away, and nothing a
user holds is read as a result or written over (each test fails without its fix)."""
import json
import os
import re
import resource
import textwrap
from pathlib import Path

import pytest

from ablations.__main__ import main as cli
from ablations.rundir import read_rows

RESULTS = "results.jsonl"


def spec(tmp_path: Path, arms: str = "", name: str = "fail") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "{name}"
        base = "roberta"
        [[arms]]
        name = "a"
        """) + textwrap.dedent(arms), encoding="utf-8")
    return path


def run(toml, out, corpus, *flags) -> int:
    return cli(["run", str(toml), "--out", str(out), "--corpus", str(corpus), "--quick", "--no-progress", *flags])


@pytest.fixture
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    return cache_dir


# -- item 4 and 5: one line; the training survives a later step's failure -----------------------------
@pytest.mark.slow
def test_a_failed_weights_step_is_one_line_and_the_rerun_trains_nothing(tmp_path, corpus_file, cache, monkeypatch,
                                                                         capsys):
    import ablations.run.arm as arm_module

    def no_safetensors(*args, **kw):
        raise ModuleNotFoundError("No module named 'safetensors'")

    real = arm_module.keep_final_weights
    monkeypatch.setattr(arm_module, "keep_final_weights", no_safetensors)
    toml, out = spec(tmp_path), tmp_path / "run"
    assert run(toml, out, corpus_file, "--steps", "4") == 1
    failed = read_rows(out / RESULTS)[-1]
    assert failed.status == "error" and failed.failed_step == "weights"
    assert re.fullmatch(r"ModuleNotFoundError: No module named 'safetensors' \(tests/integration/test_failures_keep_results\.py:\d+\)",
                        failed.error)
    log = out / "arms" / "a" / "seed-0" / "error.log"
    assert "Traceback (most recent call last)" in log.read_text() and "step: weights" in log.read_text()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: a (seed 0) failed at weights: {failed.error}; traceback: {log}"]

    monkeypatch.setattr(arm_module, "keep_final_weights", real)
    assert run(toml, out, corpus_file, "--steps", "4") == 0
    again = read_rows(out / RESULTS)[-1]
    assert again.status == "ok" and again.steps == 4 and again.steps_trained == 0
    assert again.resume.to_json() == {"kind": "resumed", "from_step": 4}
    assert again.eval_mlm_loss == failed.eval_mlm_loss  # the final evaluation kept in the checkpoint
    assert not log.exists() and (out / "arms" / "a" / "seed-0" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_failed_final_evaluation_names_its_step(tmp_path, corpus_file, cache, monkeypatch):
    import core.train.trainer as trainer_module

    real = trainer_module.evaluate

    def failing(*args, **kw):
        if "mlm_limit" not in kw:
            raise RuntimeError("out of something")
        return real(*args, **kw)

    monkeypatch.setattr(trainer_module, "evaluate", failing)
    toml, out = spec(tmp_path), tmp_path / "run"
    assert run(toml, out, corpus_file, "--steps", "3") == 1
    assert read_rows(out / RESULTS)[-1].failed_step == "final evaluation"
    monkeypatch.setattr(trainer_module, "evaluate", real)
    assert run(toml, out, corpus_file, "--steps", "3") == 0
    assert read_rows(out / RESULTS)[-1].steps_trained == 0


@pytest.mark.slow
def test_a_failed_downstream_step_is_redone_from_the_kept_weights(tmp_path, corpus_file, cache, monkeypatch):
    import ablations.run.downstream as downstream
    from tests.unit.core.finetune.test_pair_tasks import keyword_task

    monkeypatch.setattr("ablations.run.arm.measure", lambda *a, **k: {"status": "ok", "peak_mem_bytes": 2**20})
    task = f"tsv:{keyword_task(tmp_path / 'task', sizes=(100, 40, 60))}:text_a=s1,text_b=s2,label=y," \
           "kind=pair-classification"
    real = downstream.score_arm

    def failing(*args, **kw):
        raise RuntimeError("the task server is down")

    monkeypatch.setattr(downstream, "score_arm", failing)
    toml, out = spec(tmp_path), tmp_path / "run"
    flags = ("--steps", "3", "--downstream", task, "--downstream-steps", "4")
    assert run(toml, out, corpus_file, *flags) == 0
    first = read_rows(out / RESULTS)[-1]
    assert first.status == "ok" and "the task server is down" in first.downstream_error
    monkeypatch.setattr(downstream, "score_arm", real)
    assert run(toml, out, corpus_file, *flags) == 0
    rows = read_rows(out / RESULTS)
    assert len(rows) == 2 and rows[-1].downstream["task"].n == 60 and "downstream_error" not in rows[-1].to_json()
    assert rows[-1].eval_mlm_loss == first.eval_mlm_loss and rows[-1].timestamp == first.timestamp
    assert run(toml, out, corpus_file, *flags) == 0 and len(read_rows(out / RESULTS)) == 2  # nothing left to redo


def test_a_one_line_error_names_where_it_was_raised():
    from core.errors import one_line

    try:
        {}["x"]["y"]
    except KeyError as err:
        line = one_line(err)
    assert re.fullmatch(r"KeyError: 'x' \(tests/integration/test_failures_keep_results\.py:\d+\)", line)
    assert "^" not in line and "\n" not in line


# -- finding 1: a checkpoint from a larger budget -------------------------------------------------------
@pytest.mark.slow
def test_a_checkpoint_of_a_larger_budget_is_not_continued_under_a_smaller_one(tmp_path, corpus_file, cache,
                                                                               monkeypatch):
    from core.train import Trainer

    every5 = '{ "train.checkpoint_every" = 5 }'
    toml, out = spec(tmp_path, '[[arms]]\nname = "b"\noverrides = { "train.checkpoint_every" = 5, '
                               '"model.hidden_dropout" = 0.0 }\n'), tmp_path / "run"
    toml.write_text(toml.read_text().replace('name = "a"\n', f'name = "a"\noverrides = {every5}\n'))
    original = Trainer._after_step

    def interrupted_at_6(trainer):  # the user's Ctrl-C after arm a's step-5 checkpoint
        original(trainer)
        if trainer.progress.step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_after_step", interrupted_at_6)
    assert run(toml, out, corpus_file, "--steps", "100") == 130
    monkeypatch.setattr(Trainer, "_after_step", original)
    assert run(toml, out, corpus_file, "--steps", "2") == 0
    rows = {r.arm: r for r in read_rows(out / RESULTS)}
    assert rows["a"].steps == rows["b"].steps == 2 and rows["a"].tokens_seen == rows["b"].tokens_seen
    assert rows["a"].resume.kind == "restarted" and "(step 5) was made under the budget max_steps=100" in \
        rows["a"].resume.reason


# -- finding 6: which budget stopped the run -----------------------------------------------------------
@pytest.mark.slow
def test_a_run_stopped_by_time_records_seconds(tmp_path, corpus_file, cache):
    toml, out = spec(tmp_path), tmp_path / "run"
    assert run(toml, out, corpus_file, "--steps", "100000000", "--time-budget", "2s") == 0
    row = read_rows(out / RESULTS)[-1]
    assert row.stopped_by == "seconds" and row.budget_kind == "seconds" and row.steps < 100000000


# -- finding 2 and 12: rows and spec.json that are not this run's results ----------------------------------
def _run_dir_with_rows(tmp_path: Path, rows: list) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps({"ablation": "albert_reformer", "arms": ["bert"]}))
    (out / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_rows_of_another_ablation_or_of_the_wrong_shape_are_skipped_and_named(tmp_path):
    from ablations.rundir import read_results

    good = {"ablation": "albert_reformer", "arm": "bert", "seed": 0, "status": "ok", "eval_mlm_loss": 6.0}
    rows = [good, {**good, "ablation": "objective", "eval_mlm_loss": 0.01}, [1, 2], {}, {**good, "seed": "0"},
            {**good, "eval_mlm_loss": "abc"}]
    out = _run_dir_with_rows(tmp_path, rows)
    with pytest.warns(UserWarning) as caught:
        assert [r.to_json() for r in read_results(out)] == [good]
    said = [str(w.message) for w in caught]
    assert any(f"{RESULTS}:2: a row of ablation 'objective', not of this run's 'albert_reformer'" in m for m in said)
    assert any(":3: a JSON list, not a row" in m for m in said) and any(":4: no arm name" in m for m in said)
    assert any(":5: seed '0' is not a whole number" in m for m in said)
    assert any(":6: eval_mlm_loss 'abc' is not a number" in m for m in said)


@pytest.mark.parametrize("text, problem", [('{"ablation": "x", "arms": [', "not valid JSON: Expecting value at line 1"),
                                           ("[]", "a JSON list, not an object")])
def test_a_damaged_spec_json_is_refused_with_what_is_wrong(tmp_path, capsys, text, problem):
    out = _run_dir_with_rows(tmp_path, [])
    (out / "spec.json").write_text(text)
    assert cli(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / 'spec.json'} is damaged ({problem}" in err


# -- finding 7, 9 and 10: nothing written over a user's files or through a link -----------------------------
def test_a_non_empty_out_that_holds_no_run_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    link = tmp_path / "link"
    link.symlink_to(mine)
    for out in (mine, link):
        assert cli(["run", "objective", "--out", str(out), "--quick"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {out} is not empty and holds no run (report.md)" in err
    assert (mine / "report.md").read_text() == "my notes" and sorted(os.listdir(mine)) == ["report.md"]


def test_a_link_inside_the_run_directory_that_leads_outside_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run_dir_with_rows(tmp_path, [])
    (out / "arms" / "a").mkdir(parents=True)
    (out / "arms" / "a" / "seed-0").symlink_to(elsewhere)
    assert cli(["run", str(spec(tmp_path, name="albert_reformer")), "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'arms' / 'a' / 'seed-0'} is a symbolic link to {elsewhere}, outside the run directory" in err
    assert os.listdir(elsewhere) == []


def test_an_arm_name_too_long_for_a_directory_fails_before_anything_trains(tmp_path, corpus_file, cache, capsys):
    toml = spec(tmp_path, '[[arms]]\nname = "' + "😀" * 30 + '"\n')
    assert run(toml, tmp_path / "run", corpus_file) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its name is too long for a directory" in err and "360 bytes" in err
    assert not (tmp_path / "run" / RESULTS).exists()


# -- finding 11: a full disk while saving a checkpoint ----------------------------------------------------------
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_last_good_one_stays(small_data, tmp_path):
    import torch

    from core.model import PretrainingModel
    from core.train import CHECKPOINT, CheckpointError, TrainConfig, Trainer, load_checkpoint
    from variants import get_config

    def model():
        torch.manual_seed(0)
        return PretrainingModel(get_config("bert", size="tiny", vocab_size=600, max_position_embeddings=64))

    cfg = TrainConfig(batch_size=4, max_steps=4, checkpoint_every=2)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)

    def full_disk_after_2(trainer):
        if trainer.progress.step == 2:
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, limit[1]))  # a checkpoint is ~7 MB

    try:
        with pytest.raises(CheckpointError) as caught:
            Trainer(model(), small_data, cfg, tmp_path, progress_bar=False, on_step=full_disk_after_2).train()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
    message = str(caught.value)
    assert message.startswith(f"cannot write the checkpoint {tmp_path / CHECKPOINT}: the write failed (")
    assert "file-size limit" in message and "the previous checkpoint is kept" in message and "\n" not in message
    assert load_checkpoint(tmp_path / CHECKPOINT)["progress"]["step"] == 2
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT]  # no temporary file left behind


def test_the_report_says_when_arms_did_not_stop_on_one_budget():
    from ablations.report.worth import budget_notes
    from ablations.rows import Row

    def _budget_notes(rows):  # rows written as JSON objects, as results.jsonl holds them
        return budget_notes([Row.from_json(r) for r in rows])

    cfg = {"train.max_steps": 100000000, "train.max_seconds": 5.0}
    same = [{"arm": a, "stopped_by": "seconds", "config": cfg} for a in "ab"]
    assert _budget_notes(same) == ["Every arm had the same seconds budget: on that axis the arms tie by design."]
    mixed = [{"arm": "a", "stopped_by": "seconds", "config": cfg}, {"arm": "b", "stopped_by": "steps", "config": cfg}]
    assert "not stopped by one budget (seconds: a; steps: b)" in _budget_notes(mixed)[0]
    other = [{"arm": "a", "budget_kind": "steps", "config": {"train.max_steps": 20}},
             {"arm": "b", "budget_kind": "steps", "config": {"train.max_steps": 50}}]
    assert _budget_notes(other)[0].startswith("The arms trained under different budgets")
