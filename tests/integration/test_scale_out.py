"""Arms spread over processes (--shard, --arms, --workers) on one run directory, a merged
report that names what is missing, and an arm trained on torchrun's ranks (--nproc-per-node)."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ablations.__main__ import main as cli
from ablations.config import RunConfig, parse_shard
from ablations.plan.selection import select_arms
from ablations.report import render_report
from ablations.rundir import append_row, read_rows
from ablations.specs import get_ablation
from tests import ROOT

ARMS = """
[[arms]]
name = "shared"
overrides = { "model.sharing" = "all", "model.num_groups" = 1 }
"""


def spec(tmp_path: Path, extra: str = ARMS) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text('name = "dist"\nbase = "bert"\n[[arms]]\nname = "base"\n' + extra, encoding="utf-8")
    return path


def test_shards_split_the_arms_disjointly_and_cover_them_all():
    spec_ = get_ablation("albert_reformer")
    names = [a.name for a in spec_.arms]
    parts = [[a.name for a in select_arms(spec_, RunConfig(shard=f"{k}/3"))] for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(names) and parts[0] == names[0::3]
    picked = select_arms(spec_, RunConfig(arms=f"{names[2]},{names[1]},{names[0]}", shard="1/2"))
    assert [a.name for a in picked] == [names[0], names[2]]  # both in shard 1 of 2; the spec's order


@pytest.mark.parametrize("flags, message", [
    (["--shard", "3/2"], "K must be between 1 and N"), (["--shard", "1-2"], "write K/N"),
    (["--arms", "shraed"], "Did you mean 'shared'?"), (["--nproc-per-node", "0"], "--nproc-per-node must be >= 1"),
])
def test_bad_selections_are_one_line_errors(tmp_path, capsys, flags, message):
    assert cli(["run", str(spec(tmp_path)), "--quick", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert parse_shard("2/2") == (2, 2)


def test_the_merged_report_names_the_missing_arms(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"ablation": "dist", "arms": ["base", "lsh", "shared"],
                                                    "seeds": [0]}))
    row = {"ablation": "dist", "arm": "base", "seed": 0, "status": "ok", "eval_mlm_loss": 5.0, "train_loss": []}
    append_row(tmp_path / "results.jsonl", row)
    text = render_report(tmp_path).read_text()
    assert "## Missing arms" in text and "- lsh\n- shared" in text and "2 of 3 arms" in text
    for arm in ("lsh", "shared"):
        append_row(tmp_path / "results.jsonl", {**row, "arm": arm})
    assert "Missing arms" not in render_report(tmp_path).read_text()


def test_the_report_lists_arms_in_the_spec_order_whatever_order_they_finished_in(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"ablation": "dist", "arms": ["base", "lsh", "shared"],
                                                    "seeds": [0]}))
    row = {"ablation": "dist", "seed": 0, "status": "ok", "eval_mlm_loss": 5.0, "train_loss": []}
    for arm in ("shared", "lsh", "base"):  # as parallel workers might finish them
        append_row(tmp_path / "results.jsonl", {**row, "arm": arm})
    text = render_report(tmp_path).read_text()
    assert text.index("| base |") < text.index("| lsh |") < text.index("| shared |")


def test_two_shards_on_one_directory_train_every_arm_once(tmp_path, corpus_file, cache_dir):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ablations", "run", str(spec(tmp_path)), "--quick", "--no-progress", "--out",
           str(out), "--corpus", str(corpus_file), "--steps", "2"]
    env = {**os.environ, "BERT_ABLATE_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd + ["--shard", f"{k}/2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "trains 1 of 2 arms: base" in outputs[0] and "trains 1 of 2 arms: shared" in outputs[1]
    rows = read_rows(out / "results.jsonl")
    assert Counter(r.arm for r in rows) == {"base": 1, "shared": 1}
    assert all(r.status == "ok" for r in rows)
    assert cli(["report", str(out)]) in (0, None)
    report = (out / "report.md").read_text()
    assert "Missing arms" not in report and all(f"| {a} " in report for a in ("base", "shared"))


def test_workers_train_every_unit_once_and_a_twin_is_not_retrained(tmp_path, corpus_file, cache_dir):
    """--workers 2: a helper process takes free units through the leases; every arm gets one
    row, the arm whose configuration equals another's is recorded from it (never trained
    twice, even while its twin is in flight elsewhere), and the report says the arms shared
    the cores."""
    twin = ARMS.replace('name = "shared"', 'name = "shared-again"')
    third = '\n[[arms]]\nname = "pre"\noverrides = { "model.norm" = "pre" }\n'
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ablations", "run", str(spec(tmp_path, ARMS + twin + third)), "--quick",
           "--no-progress", "--out", str(out), "--corpus", str(corpus_file), "--steps", "3", "--workers", "2"]
    env = {**os.environ, "BERT_ABLATE_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "training with 2 workers side by side" in done.stdout
    assert "worker 2" in done.stdout  # the helper trained something
    rows = read_rows(out / "results.jsonl")
    assert Counter(r.arm for r in rows) == {"base": 1, "shared": 1, "shared-again": 1, "pre": 1}
    assert all(r.status == "ok" and r.workers == 2 for r in rows)
    by_arm = {r.arm: r for r in rows}
    assert by_arm["shared-again"].same_as == "shared" or by_arm["shared"].same_as == "shared-again"
    assert "Trained side by side" in (out / "report.md").read_text()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has stopped; only its exit status is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_helper_dies_with_the_process_that_started_it(tmp_path, corpus_file, cache_dir):
    """SIGKILL of the starting process (no cleanup runs there) must not leave a --workers
    helper training on the cores: the kernel kills it too, and its unit resumes later."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ablations", "run", str(spec(tmp_path)), "--quick", "--no-progress",
           "--out", str(out), "--corpus", str(corpus_file), "--steps", "100000", "--workers", "2"]
    env = {**os.environ, "BERT_ABLATE_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        helpers: set[int] = set()
        deadline = time.monotonic() + 300
        while not helpers and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.5)
            for lease in out.glob("arms/*/seed-*/lease.json"):
                try:
                    pid = json.loads(lease.read_text())["pid"]
                except (ValueError, KeyError, OSError):
                    continue
                if pid != parent.pid:
                    helpers.add(pid)
        assert helpers, "no helper took a unit"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in helpers)
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.parametrize("flags, message", [
    (["--workers", "2", "--time-budget", "1m"], "equal seconds would not be equal compute"),
    (["--workers", "2", "--nproc-per-node", "2"], "choose one"),
])
def test_workers_refuse_what_they_would_make_unfair(tmp_path, capsys, flags, message):
    assert cli(["run", str(spec(tmp_path)), "--quick", "--out", str(tmp_path / "r"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_an_arm_trains_on_two_torchrun_ranks(tmp_path, corpus_file, cache_dir, monkeypatch):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    out = tmp_path / "run"
    assert cli(["run", str(spec(tmp_path, "")), "--quick", "--no-progress", "--out", str(out), "--corpus",
                str(corpus_file), "--steps", "2", "--arms", "base", "--nproc-per-node", "2",
                ]) == 0
    (row,) = read_rows(out / "results.jsonl")
    assert row.status == "ok" and row.world_size == 2 and row.steps == 2
    assert row.eval_mlm_loss is not None and len(row.train_loss) == 2
