"""The report opens with the compute answers: Pareto plots, the cost table, equal-compute verdicts."""
import csv

import pytest

from ablations.__main__ import main as cli
from ablations.report import render_report
from ablations.rundir import append_row

COUNTS = [2, 2, 2, 2]


def point(flops, loss, spread):
    sums = [2 * (loss + s) for s in spread]  # 2 tokens per example; the mean of the sums / 2 is the loss
    return {"step": 1, "tokens": flops // 100, "seconds": flops / 1e6, "flops": flops, "curve": True,
            "eval_mlm_loss": loss, "mlm_example_losses": sums}


def row(arm, seed, losses, flops_per_step, compare_to=None, **extra):
    spread = [0.1, -0.1, 0.05, -0.05]
    evals = [point(flops_per_step * k, loss, spread) for k, loss in enumerate(losses, 1)]
    final = losses[-1]
    return {"ablation": "handmade", "arm": arm, "seed": seed, "status": "ok", "compare_to": compare_to,
            "eval_mlm_loss": final, "eval_mlm_example_loss": [2 * (final + s) for s in spread],
            "eval_mlm_example_tokens": COUNTS, "train_flops": flops_per_step * len(losses), "wall_s": 10.0,
            "peak_mem_bytes": 2**20, "params_unique": 1_000_000, "tokens_seen": 1000, "evals": evals,
            "train_loss": [], **extra}


@pytest.fixture
def run_dir(tmp_path):
    for seed, shift in ((0, 0.0), (1, 0.01)):
        # the same 2,000-FLOP budget for both (so the curves end together, at the same point of their
        # schedules); cheap has half the FLOPs per step and is 1.5 lower: it dominates the reference
        append_row(tmp_path / "results.jsonl", row("ref", seed, [5.0 + shift, 4.0 + shift], 1000))
        append_row(tmp_path / "results.jsonl", row("cheap", seed, [4.9 + shift, 4.5 + shift, 3.5 + shift, 2.5 + shift],
                                                   500, compare_to="ref"))
    return tmp_path


def test_the_report_opens_with_the_compute_answers(run_dir):
    text = render_report(run_dir).read_text()
    head, rest = text.split("## Is it worth its compute?", 1)
    assert head.startswith("# Ablation `handmade`") and "- Corpus" in rest and "## Results" in rest
    assert rest.index("![pareto_flops.png](pareto_flops.png)") < rest.index("- Corpus")
    for axis in ("flops", "seconds", "memory", "params"):
        assert (run_dir / f"pareto_{axis}.png").is_file()
    # at the common budget 2000 FLOPs: cheap (4th point) 2.5 vs ref (2nd point) 4.0, per seed: -1.5
    section = rest.split("- Corpus", 1)[0]
    table = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in section.splitlines()
             if line.startswith("| cheap") or line.startswith("| ref")}
    assert table["cheap"][1] == "ref" and table["cheap"][6] == "-1.5" and table["cheap"][7].startswith("lower")
    assert table["cheap"][8] == "yes" and table["ref"][8] == "no"
    assert "- cheap vs ref at 2e+03 FLOPs: MLM loss -1.500 (beyond noise" in section
    assert "power-law fits" not in section  # 3-4 curve points: too few to fit a crossover, no line


def test_results_csv_gains_the_compute_columns(run_dir):
    render_report(run_dir)
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    cheap = next(r for r in rows if r["arm"] == "cheap")
    assert cheap["train_flops"] == "2000" and cheap["on_front"] == "True" and cheap["on_front_flops"] == "True"
    assert float(cheap["equal_compute_diff"]) == pytest.approx(-1.5) and cheap["equal_compute_verdict"].startswith("lower")
    assert next(r for r in rows if r["arm"] == "ref")["on_front"] == "False"


def test_report_redraws_the_eval_curves_against_flops(run_dir, capsys):
    assert cli(["report", str(run_dir), "--x", "flops"]) == 0
    assert (run_dir / "eval_loss_vs_flops.png").is_file()
    assert "eval_loss_vs_flops.png" in (run_dir / "report.md").read_text()
    with pytest.raises(SystemExit):  # argparse names the choices
        cli(["report", str(run_dir), "--x", "steps"])
    assert "choose from 'tokens', 'flops', 'seconds'" in capsys.readouterr().err


def test_a_ladder_reports_its_largest_rung(run_dir):
    for rung, loss in ((0, 9.0), (1, 8.0)):
        append_row(run_dir / "results.jsonl", {**row("lad", 0, [loss], 100), "rung": rung, "rung_budget": 100,
                                               "evals": []})
    text = render_report(run_dir).read_text()
    results = text.split("## Results", 1)[1]
    assert "| lad | ok | 1 |" in results and "8.000" in results and "9.000" not in results
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    lad = [r for r in rows if r["arm"] == "lad"]
    # the compute columns sit on the result row only; lad is the cheapest in FLOPs, so on the front
    assert [r["on_front"] for r in lad] == ["", "True"]
