"""The CLI end to end: pretrain with --downstream, kept weights, export, finetune, init_from paths."""
import json

import pytest

from ablations.__main__ import main as cli
from ablations.rows import Row
from ablations.run.weights import resolve_source
from ablations.rundir import read_rows
from tests.unit.core.finetune.test_pair_tasks import keyword_task

TOML = '''
name = "ds"
description = "unshared vs shared attention, fine-tuned"
base = "roberta"

[[arms]]
name = "base"

[[arms]]
name = "shared"
description = "attention shared across layers"
overrides = { "model.sharing" = "attention", "model.num_groups" = 1 }
'''


@pytest.mark.slow
def test_run_with_downstream_then_export_finetune_and_warm_start(tmp_path, corpus_file, cache_dir, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    # memory is measured in a subprocess (test_measure.py covers it); here it would only cost time
    monkeypatch.setattr("ablations.run.arm.measure", lambda *a, **k: {"status": "ok", "peak_mem_bytes": 2**20})
    said = lambda stream="out": " ".join(getattr(capsys.readouterr(), stream).split())  # rich wraps lines
    task = f"tsv:{keyword_task(tmp_path / 'task', sizes=(100, 40, 60))}:text_a=s1,text_b=s2,label=y,kind=pair-classification"
    (tmp_path / "ds.toml").write_text(TOML, encoding="utf-8")
    run = tmp_path / "run"
    common = ["--quick", "--corpus", str(corpus_file), "--no-progress"]
    assert cli(["run", str(tmp_path / "ds.toml"), "--out", str(run), *common, "--downstream", "korst"]) == 2
    assert "unknown task 'korst'. Did you mean 'korsts'" in said("err")  # checked before pretraining
    assert cli(["run", str(tmp_path / "ds.toml"), "--out", str(run), *common, "--downstream", task,
                "--downstream-steps", "6", "--downstream-seeds", "2"]) == 0
    rows = {r.arm: r for r in read_rows(run / "results.jsonl")}
    for arm in ("base", "shared"):
        r, score = rows[arm], rows[arm].downstream["task"]
        assert r.status == "ok" and score.n == 60 and score.metric == "accuracy"
        assert len(score.seed_values) == 2 and score.se >= 0
        lo, hi = score.ci
        assert lo <= score.seed_values[0] <= hi
        kept = run / "arms" / arm / "seed-0"
        assert (kept / "model.safetensors").is_file() and not (kept / "checkpoint.pt").exists()
    report = (run / "report.md").read_text()
    assert "## Downstream" in report and "(shared vs base)" in report and "noise" in report

    capsys.readouterr()
    assert cli(["export", str(run), "base", "--out", str(tmp_path / "hf")]) == 0
    assert "in hf format" in said() and (tmp_path / "hf" / "tokenizer.json").is_file()
    assert cli(["export", str(run), "shared", "--out", str(tmp_path / "native")]) == 0
    assert "native format: HF transformers cannot represent sharing='attention'" in said()
    assert cli(["export", str(run), "shared", "--format", "hf", "--out", str(tmp_path / "x")]) == 2
    assert "cannot be exported in HF format" in said("err")
    assert cli(["finetune", str(run), "shared", "--task", task, "--steps", "3", "--seeds", "1", "--eval-every", "1",
                "--max-length", "32", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["n"] == 60 and got["metric"] == "accuracy" and len(got["values"]) == 1 and got["best_steps"][0] >= 1

    # train.init_from = "RUN_DIR/ARM" names a finished arm's kept weights (Trainer.warm_start: test_export.py)
    assert resolve_source(f"{run}/base") == str(run / "arms" / "base" / "seed-0")
    with pytest.raises(FileNotFoundError, match="neither an exported arm nor RUN_DIR/ARM"):
        resolve_source(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="unknown arm in .* 'bsae'. Did you mean 'base'"):
        resolve_source(f"{run}/bsae")


def test_downstream_verdicts_weigh_seed_and_test_set_noise():
    from ablations.report.downstream import compare_downstream, downstream_markdown

    def row(arm, score, se, ci, **kw):  # a row as results.jsonl holds it
        return Row.from_json({"arm": arm, "status": "ok", "eval_mlm_loss": 5.0, "params_unique": 10e6,
                              "peak_mem_bytes": 2**30, "downstream_qp": score, "downstream_qp_se": se,
                              "downstream_qp_n": 758, "downstream_qp_ci": ci, "downstream_qp_metric": "accuracy",
                              **kw})

    base = row("base", 0.80, 0.005, [0.77, 0.83])
    worse = row("shared", 0.70, 0.005, [0.67, 0.73], compare_to="base", component="attention sharing",
                params_unique=4e6)
    close = row("close", 0.79, 0.005, [0.76, 0.82], compare_to="base")
    # noise = 2 * sqrt(2 * (0.005^2 + (0.06 / 3.92)^2)) = 0.0455
    assert compare_downstream(worse, base, "qp") == "qp accuracy -0.100: costs downstream quality beyond noise (±0.046)"
    assert compare_downstream(close, base, "qp") == "qp accuracy -0.010: within noise (±0.046)"
    md = downstream_markdown([base, worse, close])
    assert "| shared | 5.000 | 4.00M | 1,024 MiB | 0.700 ± 0.005 (n=758, CI 0.670–0.730) |" in md
    assert "- **attention sharing** (shared vs base): saves parameters ×0.40; qp accuracy -0.100: costs" in md
    assert downstream_markdown([Row.from_json({"arm": "x", "status": "ok"})]) == ""
    # at the majority class's share (508 of 758 "same" pairs): marked, and a gap between two such
    # arms is not a verdict about the encoders
    flat = row("flat", 0.670, 0.0, [0.636, 0.703], downstream_qp_chance=508 / 758)
    flatter = row("flatter", 0.560, 0.0, [0.524, 0.595], downstream_qp_chance=508 / 758, compare_to="flat")
    assert compare_downstream(flatter, flat, "qp") == "qp accuracy -0.110: inconclusive (both at chance)"
    md = downstream_markdown([base, flat, flatter])
    assert "0.670 ± 0.000 (n=758, CI 0.636–0.703), at chance (0.670)" in md
    assert "At chance" in md and "flat (qp), flatter (qp)" in md and "base (qp)" not in md


def test_undefined_scores_are_shown_and_never_taken_as_zero(small_data, tmp_path, monkeypatch):
    """Constant predictions on every seed (a collapsed regression head): the row holds None,
    the log and the report say undefined and why, no verdict or 'at chance' is drawn, and
    a row written before (NaN, no count) reads the same."""
    import core.finetune.loop as loop
    from ablations.analysis.downstream import score_at_chance
    from ablations.report.downstream import compare_downstream, downstream_markdown, fmt_score
    from ablations.run.downstream import downstream_lines, score_arm
    from core.finetune import FinetuneConfig, load_task
    from tests.unit.core.finetune.test_pair_tasks import regression_task
    from variants import build_model

    real = loop.predict
    task = load_task(f"tsv:{regression_task(tmp_path / 'sts')}:text_a=s1,text_b=s2,label=y,kind=pair-regression")
    model = build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64)
    cfg = FinetuneConfig(max_steps=2, eval_every=1, batch_size=8, max_length=32, device="cpu")
    monkeypatch.setattr(loop, "predict", lambda model, enc, cfg, regression, device: [1.0] * len(enc.ids))
    flat = {"arm": "flat", "status": "ok", **score_arm(model, small_data.tokenizer, [task], cfg, seeds=2)}
    monkeypatch.setattr(loop, "predict", lambda model, enc, cfg, regression, device: [1.0] * len(enc.ids)
                        if cfg.seed == 1 else real(model, enc, cfg, regression, device))
    half = {"arm": "half", "status": "ok", "compare_to": "flat",
            **score_arm(model, small_data.tokenizer, [task], cfg, seeds=2)}
    assert json.dumps(flat, allow_nan=False) and json.dumps(half, allow_nan=False)  # rows are plain JSON
    assert flat["downstream_sts"] is None and flat["downstream_sts_undefined"] == 2
    assert flat["downstream_sts_why"] == "undefined: the predictions are constant"
    assert half["downstream_sts"] == half["downstream_sts_seeds"]["values"][0] and half["downstream_sts_undefined"] == 1
    why = "undefined: the predictions are constant"
    flat_row, half_row = Row.from_json(flat), Row.from_json(half)  # the rows results.jsonl would hold
    assert downstream_lines(flat_row) == ["sts spearman undefined (n=30, chance 0.000)"]
    assert fmt_score(flat_row, "sts") == f"{why} (2 of 2 seeds)" and not score_at_chance(flat_row, "sts")
    assert f"; mean of the defined seeds, {why} (1 of 2 seeds)" in fmt_score(half_row, "sts")
    assert compare_downstream(half_row, flat_row, "sts") is None     # no verdict against an undefined score
    md = downstream_markdown([flat_row, half_row])
    assert "Undefined scores (a correlation of constant predictions does not exist" in md
    assert f"flat (sts: {why} (2 of 2 seeds)), half (sts: {why} (1 of 2 seeds))" in md
    assert next(line for line in md.splitlines() if line.startswith("| flat ")).endswith(f"| {why} (2 of 2 seeds) |")
    old = {k: v for k, v in flat.items() if not k.endswith(("_undefined", "_why"))}
    old.update(downstream_sts=float("nan"), downstream_sts_se=float("nan"),
               downstream_sts_ci=[float("nan"), float("nan")])
    old = Row.from_json(old)
    assert fmt_score(old, "sts") == "undefined (2 of 2 seeds)" and not score_at_chance(old, "sts")
    assert downstream_lines(old) == ["sts spearman undefined (n=30, chance 0.000)"]
