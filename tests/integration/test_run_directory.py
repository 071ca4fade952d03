"""What a run directory guarantees: one ablation, one result per (arm, seed), arm names
that never collide, exports that match their row and never delete what they did not
write, and configuration errors found before anything trains."""
import json
import shutil

import pytest

from ablations.__main__ import main as cli
from ablations.plan import RunConfig, make_plan
from ablations.plan.ladder import budget_axis
from ablations.rows import Row
from ablations.rundir import (
    RESULTS,
    append_row,
    arm_dir,
    arm_dirname,
    claim_run_dir,
    default_run_dir,
    read_rows,
    result_rows,
    results,
)
from ablations.specs import get_ablation, load_toml


def test_arm_directory_names_are_injective_and_stay_inside_arms(tmp_path):
    names = ["x/y", "x_y", "x%2Fy", "..", ".", "E=H shared", "all/1", "+factorized", "한국어"]
    dirs = [arm_dirname(n) for n in names]
    assert len(set(dirs)) == len(names)
    for n in names:
        d = arm_dir(tmp_path, n, 0)
        assert d.resolve().parent.parent == (tmp_path / "arms").resolve() and "/" not in arm_dirname(n)
    assert arm_dirname("+factorized") == "+factorized"  # names that are already safe are kept as they are


def test_default_run_directory_stays_under_runs():
    assert str(default_run_dir("/tmp/elsewhere")).startswith("runs/")
    assert default_run_dir("objective").as_posix() == "runs/objective"


def test_one_rule_for_which_rows_are_results():
    rows = [Row.from_json(r) for r in (
            {"arm": "a", "seed": 0, "status": "ok", "v": 1},
            {"arm": "a", "seed": 1, "status": "ok", "v": 2},
            {"arm": "b", "seed": 0, "ladder": 3, "rung": 0, "v": 3},  # a lower rung: a budget point
            {"arm": "b", "seed": 0, "ladder": 3, "rung": 2, "v": 4},
            {"arm": "a", "seed": 0, "status": "nan", "v": 5})]        # a re-run replaces the earlier row
    assert {k: r.extra["v"] for k, r in results(rows).items()} == {("a", 0): 5, ("a", 1): 2, ("b", 0): 4}
    assert [r.extra["v"] for r in result_rows(rows)] == [5, 2, 4]


def test_a_budget_speaks_in_one_order_everywhere():
    """--steps and --tokens together: the arms are matched on tokens, and a ladder rung says tokens too."""
    settings = make_plan(get_ablation("seq_scaling"), RunConfig(steps=5, tokens=1000)).config
    assert settings.budget.kind == "tokens"
    assert budget_axis(settings.budget.fields()) == ("tokens", 1000)


def test_a_run_directory_belongs_to_one_ablation(tmp_path):
    claim_run_dir(tmp_path, "objective")
    append_row(tmp_path / RESULTS, {"ablation": "objective", "arm": "nsp", "seed": 0, "status": "ok"})
    claim_run_dir(tmp_path, "objective")  # the same ablation may resume there
    with pytest.raises(ValueError, match="holds a run of ablation 'objective'; running 'masking' there"):
        claim_run_dir(tmp_path, "masking")


def test_every_arm_is_checked_before_any_trains(tmp_path, corpus_file, capsys):
    spec = tmp_path / "typo.toml"
    spec.write_text('name = "typo"\nbase = "bert"\n[[arms]]\nname = "base"\n'
                    '[[arms]]\nname = "fast"\noverrides = { "train.lr" = "fast" }\n'
                    '[[arms]]\nname = "lhs"\noverrides = { "model.attention" = "lhs" }\n', encoding="utf-8")
    out = tmp_path / "run"
    assert cli(["run", str(spec), "--quick", "--out", str(out), "--corpus", str(corpus_file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration in 2 arm(s)" in err and "fast: arm 'fast': train.lr must be float" in err
    assert "lhs: " in err and "Did you mean 'lsh'" in err
    assert not (out / RESULTS).exists()  # nothing trained
    with pytest.raises(ValueError, match="nothing trained"):
        make_plan(load_toml(spec), RunConfig(quick=True, corpus=str(corpus_file)))


@pytest.mark.parametrize("argv, message", [
    (["--flops", "-1e9"], "--flops must be >= 1"),
    (["--lr", "inf"], "--lr must be a finite number > 0"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--lr", "-1e-3"], "--lr must be a finite number > 0"),
])
def test_bad_numbers_are_named(argv, message, capsys):
    assert cli(["run", "objective", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_micro_run_reads_its_gpu_budget_without_crashing(tmp_path):
    """The CPU budgets' size (micro) was missing from the report's size order."""
    from ablations.analysis.verdicts import collect
    from ablations.report.training import _warnings

    arms = collect([Row.from_json({"arm": "a", "seed": 0, "status": "ok"})])
    info = {"gpu_budget": {"size": "small", "tokens": 100, "why": "w"}, "options": {"size": "micro"},
            "budget_per_arm": {"max_tokens": 1000}}
    assert "is far below the budget" in _warnings(arms, info, "x")[-1]
    info["options"]["size"] = "base"
    assert "meets the budget" in _warnings(arms, info, "x")[-1]


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory, corpus_file, cache_dir):
    """objective's nsp arm trained at seed 0 (lr 1e-3), then at seed 3 (lr 5e-3) into one directory."""
    out = tmp_path_factory.mktemp("run")
    base = ["run", "objective", "--quick", "--arms", "nsp", "--out", str(out), "--corpus", str(corpus_file),
            "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BERT_ABLATE_CACHE", str(cache_dir))
        assert cli(base + ["--lr", "0.001"]) == 0
        assert cli(base + ["--seed", "3", "--lr", "0.005"]) == 0
    return out


def test_a_skipped_unit_is_the_result_again_after_another_rate_replaced_it(tmp_path, corpus_file, cache_dir,
                                                                            monkeypatch):
    """lr 1e-3, then 5e-3, then 1e-3 again on one directory: the third run trains nothing,
    and the (arm, seed)'s result is the 1e-3 row again, not the later 5e-3 one."""
    from ablations.rundir import results

    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    out = tmp_path / "run"
    base = ["run", "objective", "--quick", "--arms", "nsp", "--out", str(out), "--corpus", str(corpus_file),
            "--no-progress"]
    for lr in ("0.001", "0.005", "0.001"):
        assert cli(base + ["--lr", lr]) == 0
    rows = read_rows(out / RESULTS)
    assert [r.config["train.lr"] for r in rows] == [1e-3, 5e-3, 1e-3] and rows[-1].reinstated
    assert rows[-1].key == rows[0].key and rows[-1].eval_mlm_loss == rows[0].eval_mlm_loss
    assert results(rows)[("nsp", 0)].config["train.lr"] == 1e-3
    assert cli(base + ["--lr", "0.001"]) == 0  # already the result: nothing appended
    assert len(read_rows(out / RESULTS)) == 3


def _exported_source(directory):
    return json.loads((directory / "bert_ablate.json").read_text())["source"]


@pytest.mark.slow
def test_export_names_the_seed_and_takes_the_row_it_reports(two_seed_run, tmp_path, capsys):
    run = two_seed_run
    rows = {r.seed: r for r in read_rows(run / RESULTS)}
    assert cli(["export", str(run), "nsp@3", "--format", "native", "--out", str(tmp_path / "e3")]) == 0
    assert "nsp seed 3 (of seeds 0, 3" in capsys.readouterr().out
    assert _exported_source(tmp_path / "e3") == {"run_dir": str(run), "arm": "nsp", "seed": 3}
    kept = json.loads((run / rows[3].weights_dir / "bert_ablate.json").read_text())["source"]
    assert kept["key"] == rows[3].key != rows[0].key
    assert cli(["export", str(run), "nsp", "--seed", "3", "--out", str(tmp_path / "e3b")]) == 0
    assert cli(["export", str(run), "nsp", "--out", str(tmp_path / "e0")]) == 0  # ARM alone: the first seed
    assert _exported_source(tmp_path / "e0")["seed"] == 0
    assert cli(["export", str(run), "nsp@7", "--out", str(tmp_path / "e7")]) == 2
    assert "has no seed 7" in capsys.readouterr().err


@pytest.mark.slow
def test_a_directory_without_seed_0_exports_its_own_seed(two_seed_run, tmp_path):
    run = tmp_path / "only3"
    shutil.copytree(two_seed_run, run)
    lines = [r for r in read_rows(run / RESULTS) if r.seed == 3]
    (run / RESULTS).write_text("".join(json.dumps(r.to_json()) + "\n" for r in lines))
    shutil.rmtree(run / "arms" / "nsp" / "seed-0")
    assert cli(["export", str(run), "nsp", "--out", str(tmp_path / "e")]) == 0
    assert _exported_source(tmp_path / "e")["seed"] == 3


@pytest.mark.slow
def test_a_failed_rerun_is_not_exported_with_older_weights(two_seed_run, tmp_path, capsys):
    run = tmp_path / "stale"
    shutil.copytree(two_seed_run, run)
    row = next(r for r in read_rows(run / RESULTS) if r.seed == 0)
    append_row(run / RESULTS, {**row.to_json(), "status": "nan", "error": "non-finite loss at step 2",
                               "timestamp": "2099-01-01T00:00:00"})
    assert cli(["export", str(run), "nsp", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "seed 0 (its result row of 2099-01-01T00:00:00) ended 'nan'" in err and not (tmp_path / "e").exists()


@pytest.mark.slow
def test_export_never_deletes_what_it_did_not_write(two_seed_run, tmp_path, capsys):
    run = two_seed_run
    theirs = tmp_path / "d"
    theirs.mkdir()
    (theirs / "config.json").write_text("{}")
    (theirs / "NOTES.md").write_text("x")
    assert cli(["export", str(run), "nsp", "--out", str(theirs)]) == 2
    assert "NOTES.md" in capsys.readouterr().err and (theirs / "NOTES.md").read_text() == "x"
    weights = run / "arms" / "nsp" / "seed-3"
    before = sorted(p.name for p in weights.iterdir())
    assert cli(["export", str(run), "nsp@3", "--format", "native", "--out", str(weights)]) == 2
    assert "inside the run's arms/ directory" in capsys.readouterr().err
    assert sorted(p.name for p in weights.iterdir()) == before
    # an earlier export is replaced whole; a file added to it since is refused, not deleted
    out = tmp_path / "again"
    assert cli(["export", str(run), "nsp", "--out", str(out)]) == 0
    assert cli(["export", str(run), "nsp@3", "--out", str(out)]) == 0
    assert _exported_source(out)["seed"] == 3
    (out / "mine.txt").write_text("keep")
    assert cli(["export", str(run), "nsp", "--out", str(out)]) == 2
    assert (out / "mine.txt").read_text() == "keep"


@pytest.mark.slow
def test_another_ablation_is_refused_before_it_trains(two_seed_run, corpus_file, capsys):
    rows = len(read_rows(two_seed_run / RESULTS))
    assert cli(["run", "masking", "--quick", "--out", str(two_seed_run), "--corpus", str(corpus_file),
                "--no-progress"]) == 2
    assert "holds a run of ablation 'objective'; running 'masking'" in capsys.readouterr().err
    assert len(read_rows(two_seed_run / RESULTS)) == rows


@pytest.mark.slow
def test_the_report_reads_only_the_run_directory(two_seed_run, tmp_path, monkeypatch):
    """A copied run renders the same report when the catalogue no longer knows its ablation:
    description and expected directions come from spec.json."""
    import ablations.specs.catalogue as catalogue
    from ablations.report import render_report

    run = tmp_path / "copied"
    shutil.copytree(two_seed_run, run)
    description = get_ablation("objective").description
    monkeypatch.setattr(catalogue, "ABLATIONS", {})
    report = render_report(run).read_text()
    assert description in report
    assert "The papers' expected directions" in report and "ALBERT Table 5" in report


@pytest.mark.slow
def test_lr_search_picks_the_rate_that_learns_and_never_trains_a_point_twice(tmp_path, corpus_file, cache_dir,
                                                                             monkeypatch, capsys):
    """A grid whose smallest rate barely moves the model and whose largest diverges: the
    search keeps the middle one, trains every seed at it, and a re-run trains nothing."""
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    out, spec = tmp_path / "run", tmp_path / "search.toml"
    # the output bias at zero: at 1e-6 the loss stays at log V, at 1e-3 it falls to the
    # unigram entropy within a few steps, at 3 it diverges
    spec.write_text('name = "search"\nbase = "bert"\nbase_overrides = { "train.mlm_bias" = "zero" }\n'
                    '[[arms]]\nname = "nsp"\n', encoding="utf-8")
    argv = ["run", str(spec), "--quick", "--steps", "40", "--seeds", "2", "--lr-search",
            "--lr-grid", "0.001,1,3000", "--lr-search-fraction", "0.5", "--out", str(out), "--corpus",
            str(corpus_file), "--no-progress"]
    assert cli(argv) == 0
    points = read_rows(out / "lr-search" / RESULTS)
    assert sorted(round(r.config["train.lr"], 9) for r in points) == [1e-6, 1e-3, 3.0]
    assert {r.steps for r in points if r.status == "ok"} <= {20}  # half the budget
    rows = read_rows(out / RESULTS)
    assert [(r.seed, r.config["train.lr"]) for r in rows] == [(0, 1e-3), (1, 1e-3)]
    search = rows[0].lr_search
    assert search.chosen == 1e-3 and not search.edge and "lr search" in rows[0].lr_source
    report = (out / "report.md").read_text()
    assert "rates tuned per arm" in report and "not counted in the arm's cost" in report
    capsys.readouterr()
    assert cli(argv) == 0  # resumed: the same choice, nothing trained again
    assert len(read_rows(out / "lr-search" / RESULTS)) == 3 and len(read_rows(out / RESULTS)) == 2
    assert "finished earlier" in capsys.readouterr().out


def test_a_rate_at_the_grids_edge_is_told_apart_from_a_bracketed_one():
    """Rows keep rates to 6 significant digits (mini's width-rule rate 5e-4 x 128/256 is
    exact, small's 2.5e-4 x 128/192 is not): the side is found all the same, and the top,
    where a short search is biased, asks for a longer search, not just a wider grid."""
    from ablations.analysis.lr_grid import edge_side
    from ablations.words import edge_advice

    base = 1e-3 * 128 / 384
    rates = [float(f"{base * m:.6g}") for m in (0.5, 1, 2)]
    assert edge_side(base * 2, rates) == "top" and edge_side(base * 0.5, rates) == "bottom"
    assert edge_side(base, rates) is None and edge_side(None, rates) is None
    assert "--lr-search-fraction" in edge_advice("top") and "downward" in edge_advice("bottom")
    assert edge_advice(None) == ""
