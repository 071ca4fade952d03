"""The runner and its specs: claimed keys, end-to-end quick runs, resume, failures as results."""
import json

import pytest

from ablations.__main__ import main as cli
from ablations.plan import RunConfig, parse_duration, settle
from ablations.plan.resolve import resolve_arm
from ablations.report import render_report
from ablations.rows import ROW_VERSION
from ablations.run import run_ablation
from ablations.rundir import read_rows
from ablations.specs import ABLATIONS, AblationSpec, Arm, get_ablation
from core.model import PretrainingModel


def flat_diff(a: dict, b: dict) -> set:
    return {k for k in a if a[k] != b.get(k)}


# fields whose automatic value follows another's: claiming the one changes the other too
DERIVED = {"data.mask_prob": {"data.max_predictions"}, "model.ffn": {"model.intermediate_size"},
           "model.hidden_size": {"model.intermediate_size", "model.embedding_size"}}


@pytest.mark.parametrize("name", [n for n, s in ABLATIONS.items() if s.kind == "train"])
def test_arms_differ_from_the_base_in_exactly_the_keys_they_claim(name):
    spec = ABLATIONS[name]
    opts = RunConfig()
    settings = settle(spec, opts)
    base = resolve_arm(spec, spec.base_arm, settings, "fp")
    for arm in spec.arms[1:]:
        res = resolve_arm(spec, arm, settings, "fp")
        claimed = set(arm.overrides) | {d for key in arm.overrides for d in DERIVED.get(key, ())}
        changed = flat_diff(res.flat, base.flat)
        # nothing changes that the arm does not claim; a claimed key may restate the base's
        # value for readability (lsh/4 names n_hashes=4, the default; all/L names L groups)
        assert changed and changed <= claimed, (arm.name, changed - claimed)


def test_sharing_with_one_group_per_layer_is_one_run_with_no_sharing():
    """At micro (L = 4) the /4 and /L arms share nothing: they build no sharing's model,
    weight for weight, so they are its twins (trained once) and every other arm is not."""
    import torch

    spec = ABLATIONS["sharing"]
    opts = RunConfig()
    settings = settle(spec, opts)
    res = {a.name: resolve_arm(spec, a, settings, "fp") for a in spec.arms}
    twins = {n for n, r in res.items() if r.key == res["none"].key}
    assert twins == {"none"} | {f"{s}/{g}" for s in ("all", "attention", "ffn") for g in (4, "L")}
    assert len({r.key for r in res.values()}) == 7
    models = {}
    for name in ("none", "all/L", "attention/4"):
        torch.manual_seed(0)
        models[name] = PretrainingModel(res[name].model).state_dict()
    for name in ("all/L", "attention/4"):
        assert models[name].keys() == models["none"].keys()
        assert all(torch.equal(models[name][k], v) for k, v in models["none"].items())


def test_albert_reformer_ladder_ends_at_the_named_variant():
    from variants import get_config

    spec = ABLATIONS["albert_reformer"]
    settings = settle(spec, RunConfig())
    top = resolve_arm(spec, spec.arm("+reversible"), settings, "fp")
    # the named variant, with the choices that keep factorization and LSH meaningful at the
    # CPU budget's H=128 and 128-token sequences, and LSH affordable (ablations.specs._FACT, _LSH)
    assert top.model == get_config("albert-reformer", "micro", vocab_size=4000, embedding_size=64,
                                   lsh_bucket_size=32, lsh_n_hashes=2)
    # leave-one-out (its own ablation): the full arm is the ladder's top rung, and each other
    # arm differs from it in exactly its component's keys
    loo = ABLATIONS["albert_reformer_loo"]
    loo_settings = settle(loo, RunConfig())
    full = resolve_arm(loo, loo.base_arm, loo_settings, "fp")
    assert full.model == top.model and full.data == top.data
    assert [a.name for a in loo.arms[1:]] == [f"ar-no-{k}" for k in ("factorized", "shared", "sop", "lsh", "reversible")]
    bert = resolve_arm(spec, spec.base_arm, settings, "fp")
    for arm in loo.arms[1:]:
        res = resolve_arm(loo, arm, loo_settings, "fp")
        assert flat_diff(res.flat, full.flat) == set(arm.overrides)
        assert all(res.flat[k] == bert.flat[k] for k in arm.overrides)  # set back to BERT's own values


@pytest.mark.parametrize("arm", ["albert", "roberta"])
def test_papers_arms_are_the_named_variants(arm):
    """`papers` compares the variants themselves: each arm's model and data equal those of
    build_model(arm) and its paper's data choices, at the run's size and vocabulary."""
    from core.data import DataConfig
    from variants import get_config, get_variant

    spec = ABLATIONS["papers"]
    settings = settle(spec, RunConfig())
    res = resolve_arm(spec, spec.arm(arm), settings, "fp")
    assert res.model == get_config(arm, settings.size, vocab_size=settings.vocab_size)
    expected_data = DataConfig(**{**res.data.to_dict(), **get_variant(arm).data})
    assert res.data == expected_data and res.data.sentence_task == get_variant(arm).data["sentence_task"]


def test_curve_points_together_read_no_more_tokens_than_training():
    from ablations.plan.resolve import CURVE_MIN_EXAMPLES, curve_examples

    # the attention ablation's CPU budget: 550,000 tokens at 512 over 8 points -> 134 examples a point
    spec = ABLATIONS["attention"]
    settings = settle(spec, RunConfig())
    res = resolve_arm(spec, spec.base_arm, settings, "fp")
    assert res.train.curve_examples == 550_000 // (8 * 512) == 134
    assert curve_examples({"batch_size": 2, "max_tokens": 40_000, "eval_points": 8}, 1024) == CURVE_MIN_EXAMPLES
    assert curve_examples({"batch_size": 16, "max_tokens": 550_000, "eval_points": 8}, 128) == 512  # 537 -> cap
    assert curve_examples({"batch_size": 16, "max_steps": 100, "eval_points": 8}, 128) == 200      # 204,800 tokens
    flops = {"batch_size": 16, "max_flops": 1e12, "flops_per_step": 1e10, "eval_points": 4}
    assert curve_examples(flops, 128) == 400                                                         # 100 steps
    assert curve_examples({"batch_size": 16, "max_seconds": 60.0, "eval_points": 8}, 128) == 512     # unknown


def test_parse_duration():
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    with pytest.raises(ValueError, match="10m"):
        parse_duration("ten minutes")


def quick(tmp_path, corpus_file, cache_dir, **kw):
    return RunConfig(corpus=str(corpus_file), quick=True, out=str(tmp_path), cache_dir=str(cache_dir),
                      progress=False, **kw)


@pytest.mark.slow
def test_quick_objective_run_end_to_end_then_resume_skips_everything(tmp_path, corpus_file, cache_dir):
    spec = get_ablation("objective")
    run_ablation(spec, quick(tmp_path, corpus_file, cache_dir))
    render_report(tmp_path)
    rows = read_rows(tmp_path / "results.jsonl")
    assert [r.arm for r in rows] == ["nsp", "none", "sop"]
    required = {"ablation", "arm", "variant", "config", "status", "error", "params_unique", "params_total",
                "tokens_seen", "wall_s", "train_loss", "eval_mlm_loss", "eval_mlm_acc", "eval_nsp_acc",
                "eval_sop_acc", "tokens_per_s", "peak_mem_bytes", "saved_bytes", "device"}
    for r in rows:
        assert required <= set(r.to_json()) and r.status == "ok", r.error  # every key written from the start
        assert r.row_version == ROW_VERSION and not r.extra  # the row schema knows every field a run writes
        assert r.eval_nsp_acc is not None and r.eval_sop_acc is not None  # cross-evaluation
        assert r.config["data.sentence_task"] == r.arm
    assert (tmp_path / "report.md").is_file() and (tmp_path / "results.csv").is_file()
    assert (tmp_path / "loss_vs_tokens.png").stat().st_size > 1000
    # re-running the same command skips every finished arm
    run_ablation(spec, quick(tmp_path, corpus_file, cache_dir))
    assert len(read_rows(tmp_path / "results.jsonl")) == 3
    # a different budget is a different configuration: it runs again
    report = (tmp_path / "report.md").read_text()
    assert "| nsp | ok |" in report


@pytest.mark.slow
def test_quick_toml_run_with_a_failing_arm_and_a_forced_oom(tmp_path, corpus_file, cache_dir, monkeypatch, capsys):
    toml = tmp_path / "mine.toml"
    toml.write_text('''
name = "mine"
description = "a user's own ablation"
base = "roberta"

[[arms]]
name = "base"

[[arms]]
name = "crash"
description = "fails while training (a configuration error would stop the run before any arm trains)"
overrides = { "model.norm" = "pre" }

[[arms]]
name = "boom"
description = "forced OOM"
overrides = { "model.attention" = "full-shared-qk" }

[[arms]]
name = "lsh"
overrides = { "model.attention" = "lsh", "model.lsh_bucket_size" = 16 }
''', encoding="utf-8")
    original = PretrainingModel.forward

    def forward(self, *args, **kwargs):
        if self.cfg.attention == "full-shared-qk":
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.cfg.norm == "pre":
            raise RuntimeError("the crash arm's own failure")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PretrainingModel, "forward", forward)
    out = tmp_path / "run"
    # one arm in error: exit 1, one line naming it; the oom arm is a result, not an error
    assert cli(["run", str(toml), "--quick", "--out", str(out), "--corpus", str(corpus_file), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "error: crash (seed 0) failed at train: RuntimeError: the crash arm's own failure (tests/integration/test_runner.py:" \
        in err and "1 failed" in err
    assert "boom" not in err
    rows = {r.arm: r for r in read_rows(out / "results.jsonl")}
    assert rows["base"].status == "ok" and rows["lsh"].status == "ok"
    assert rows["crash"].status == "error" and "own failure" in rows["crash"].error
    assert rows["boom"].status == "oom" and "out of memory" in rows["boom"].error
    assert rows["lsh"].saved_bytes > 0
    report = render_report(out).read_text()
    assert "Arms that did not finish" in report and "crash (seed 0): error" in report


def test_cli_data_json(corpus_file, cache_dir, capsys):
    assert cli(["data", "--corpus", str(corpus_file), "--vocab-size", "600", "--max-length", "64",
                "--masking", "dynamic", "--mask-unit", "whole-word", "--cache-dir", str(cache_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key in ("documents", "sentences", "examples", "tokens", "mean_length", "max_length", "unk_rate",
                "mask_rate", "replace_frac", "random_frac", "keep_frac", "sentence_label_balance"):
        assert key in stats
    assert stats["max_length"] <= 64 and abs(stats["mask_rate"] - 0.15) < 0.03


def test_cli_errors_are_clear(capsys, tmp_path):
    assert cli(["run", "albert_reformr"]) == 2
    assert "Did you mean 'albert_reformer'" in capsys.readouterr().err
    assert cli(["data", "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    assert cli(["report", str(tmp_path)]) == 2


def test_spec_validation_names_the_problem():
    with pytest.raises(ValueError, match="Did you mean 'attention'"):
        AblationSpec("x", "", "bert", (Arm("a"), Arm("b", {"model.atention": "lsh"})))
    with pytest.raises(ValueError, match="'model.<field>'"):
        AblationSpec("x", "", "bert", (Arm("a"), Arm("b", {"attention": "lsh"})))


@pytest.mark.slow
def test_bench_writes_rows_and_plots(tmp_path):
    assert cli(["bench", "both", "--variants", "bert,reformer", "--seq-lens", "128,256", "--size", "tiny",
                "--tokens-per-batch", "512", "--vocab-size", "300", "--out", str(tmp_path), "--quick"]) == 0
    rows = read_rows(tmp_path / "bench.jsonl")
    assert [(r.variant, r.seq_len, r.batch_size) for r in rows] == [
        ("bert", 128, 4), ("bert", 256, 2), ("reformer", 128, 4), ("reformer", 256, 2)]
    for r in rows:
        assert r.status == "ok"
        for figure in (r.tokens_per_s, r.peak_mem_bytes, r.saved_bytes):
            assert figure > 0, r  # measured, not left empty
    assert (tmp_path / "memory_vs_seq_len.png").is_file()


@pytest.mark.slow
def test_quick_packing_run_end_to_end(tmp_path, corpus_file, cache_dir):
    run_ablation(get_ablation("packing"), quick(tmp_path, corpus_file, cache_dir))
    render_report(tmp_path)
    rows = {r.arm: r for r in read_rows(tmp_path / "results.jsonl")}
    assert all(r.status == "ok" for r in rows.values()), {k: r.error for k, r in rows.items()}
    assert rows["full-sentences"].config["data.packing"] == "full-sentences"
    assert rows["full-sentences"].config["data.sentence_task"] == "none"
    # every arm is scored on the base arm's held-out examples and masks, whatever its packing
    assert {r.eval_set for r in rows.values()} == {"base"}
    assert len({r.eval_mlm_tokens for r in rows.values()}) == 1
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + len(rows) and "config.data.packing" in csv[0]
