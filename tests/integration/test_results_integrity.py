"""Results that cannot be silently wrong: concurrent writers, checkpoint identity, exit
codes, one-line errors, OOM ordering (issue 9). Every test runs what a user would run."""
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from ablations.__main__ import main as cli
from ablations.rundir import append_row, read_rows
from core.lease import Lease
from core.model import PretrainingModel
from tests import ROOT


def spec(tmp_path: Path, arms: str, defaults: str = "", name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""\
        name = "rel"
        base = "bert"
        [defaults]
        {defaults}
        [[arms]]
        name = "base"
        """) + textwrap.dedent(arms), encoding="utf-8")
    return path


def run_cli(*args) -> int:
    return cli(["run", *map(str, args), "--quick", "--no-progress"])


# -- several writers -----------------------------------------------------------------------------------
def test_two_processes_appending_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "results.jsonl"
    code = ("import sys; from pathlib import Path; from ablations.rundir import append_row\n"
            "for i in range(200): append_row(Path(sys.argv[1]), {'arm': sys.argv[2], 'i': i, 'pad': 'x' * 3000})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), w], cwd=ROOT) for w in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = read_rows(path)
    assert Counter((r.arm, r.extra["i"]) for r in rows) == Counter({(w, i): 1 for w in "ab" for i in range(200)})


def test_a_torn_last_line_is_skipped_and_the_next_row_survives(tmp_path):
    path = tmp_path / "results.jsonl"
    append_row(path, {"arm": "a"})
    with open(path, "a") as fh:
        fh.write('{"arm": "b", "loss": 1.2')  # a writer killed mid-row
    with pytest.warns(UserWarning, match="torn row"):
        assert [r.arm for r in read_rows(path)] == ["a"]
    append_row(path, {"arm": "c"})
    with pytest.warns(UserWarning, match=":2 is a torn row"):
        assert [r.arm for r in read_rows(path)] == ["a", "c"]


def test_a_lease_excludes_a_second_holder_and_expires_when_its_holder_dies(tmp_path):
    first, second = Lease(tmp_path, ttl_s=60), Lease(tmp_path, ttl_s=60)
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second._stop.set()  # a crashed holder: no heartbeat, no release
    os.utime(second.path, (0, 0))
    assert Lease(tmp_path, ttl_s=60).acquire()


@pytest.mark.slow
def test_two_runs_on_one_directory_train_every_arm_once(tmp_path, corpus_file, cache_dir):
    toml = spec(tmp_path, """
        [[arms]]
        name = "lsh"
        overrides = { "model.attention" = "lsh", "model.lsh_bucket_size" = 16 }
        [[arms]]
        name = "shared"
        overrides = { "model.sharing" = "all", "model.num_groups" = 1 }
        """)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ablations", "run", str(toml), "--quick", "--no-progress", "--out", str(out),
           "--corpus", str(corpus_file), "--steps", "6"]
    env = {**os.environ, "BERT_ABLATE_CACHE": str(cache_dir)}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    rows = read_rows(out / "results.jsonl")
    assert sorted(r.arm for r in rows) == ["base", "lsh", "shared"], outputs
    assert all(r.status == "ok" for r in rows)
    assert (out / "report.md").is_file()


# -- checkpoint identity -------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_changed_lr_never_continues_the_old_checkpoint(tmp_path, corpus_file, cache_dir, monkeypatch):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    toml, out = spec(tmp_path, ""), tmp_path / "run"
    args = [toml, "--out", out, "--corpus", corpus_file, "--steps", "3", "--keep-checkpoints"]
    assert run_cli(*args) == 0
    assert run_cli(*args, "--lr", "5e-4") == 0
    rows = read_rows(out / "results.jsonl")
    assert [r.config["train.lr"] for r in rows] == [1e-3, 5e-4]
    assert rows[1].resume.kind == "restarted" and "train.lr 0.001 -> 0.0005" in rows[1].resume.reason
    assert rows[1].steps == 3 and rows[1].train_loss[-1] != rows[0].train_loss[-1]


@pytest.mark.slow
def test_a_nan_arm_is_a_result_recorded_once(tmp_path, corpus_file, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    original = PretrainingModel.forward

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.training and self.cfg.attention == "full-shared-qk":
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PretrainingModel, "forward", forward)
    toml = spec(tmp_path, """
        [[arms]]
        name = "blowup"
        overrides = { "model.attention" = "full-shared-qk" }
        """)
    out = tmp_path / "run"
    for _ in range(2):  # nan is a result: exit 0, and a re-run does not append it again
        assert run_cli(toml, "--out", out, "--corpus", corpus_file) == 0
    statuses = Counter(r.status for r in read_rows(out / "results.jsonl"))
    assert statuses == {"ok": 1, "nan": 1}
    assert "non-finite loss: change its configuration" in " ".join(capsys.readouterr().out.split())


# -- exit codes and validation -------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--steps", "-5"], "--steps must be >= 1"), (["--steps", "0"], "--steps must be >= 1"),
    (["--tokens", "-100"], "--tokens must be >= 1"), (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--seq-len", "0"], "--seq-len must be >= 8"), (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--vocab-size", "3"], "--vocab-size must be >= 16"), (["--seeds", "0"], "--seeds must be >= 1"),
])
def test_bad_numbers_are_refused_up_front(tmp_path, capsys, flags, message):
    assert run_cli("objective", "--out", tmp_path / "run", *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_unknown_toml_keys_and_binary_files_are_one_line_errors(tmp_path, capsys):
    assert run_cli(spec(tmp_path, "", defaults="seqlen = 64"), "--out", tmp_path / "r") == 2
    assert "unknown key in the defaults of ablation 'rel' 'seqlen'. Did you mean 'seq_len'?" in capsys.readouterr().err
    binary = tmp_path / "x.toml"
    binary.write_bytes(bytes(range(256)))
    assert run_cli(binary, "--out", tmp_path / "r") == 2
    assert f"{binary} is not a UTF-8 text file" in capsys.readouterr().err


def test_unwritable_or_wrong_out_paths_are_one_line_errors(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert run_cli("objective", "--out", a_file) == 2  # --out naming an existing file
    assert f"--out {a_file} is a file, not a directory" in capsys.readouterr().err
    assert run_cli("objective", "--out", a_file / "below") == 2  # unwritable even for root
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write the run directory {a_file / 'below'}" in err


def test_a_model_length_conflict_is_caught_before_any_data(tmp_path, corpus_file, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache))
    toml = spec(tmp_path, "").read_text().replace('name = "base"', 'name = "base"\noverrides = '
                                                    '{ "model.max_position_embeddings" = 32 }')
    (tmp_path / "conflict.toml").write_text(toml)
    assert run_cli(tmp_path / "conflict.toml", "--out", tmp_path / "r", "--corpus", corpus_file,
                   "--seq-len", "64") == 2  # every arm is checked before anything is built or trained
    assert "--seq-len 64 exceeds model.max_position_embeddings=32" in capsys.readouterr().err
    assert not cache.exists()  # nothing was tokenised


def test_data_failures_stop_the_run_once_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n\n".encode("latin-1") * 20)
    for flags, message in [(["--corpus", empty], "is empty"), (["--corpus", latin1], "has no UTF-8 text")]:
        assert run_cli("objective", "--out", tmp_path / "r", *flags) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    rows = read_rows(tmp_path / "r" / "results.jsonl")
    assert rows == []  # not one error row per arm: the run stopped before any arm


def test_cli_data_names_a_bad_tokenizer_file(tmp_path, corpus_file, capsys):
    text = tmp_path / "tok.model"
    text.write_text("not a model")
    assert cli(["data", "--corpus", str(corpus_file), "--tokenizer", str(text)]) == 2
    assert f"{text} is not a SentencePiece model" in capsys.readouterr().err


# -- bench: ascending lengths, skipped ooms are not final -------------------------------------------------
def test_bench_sorts_lengths_and_remeasures_skipped_ooms(tmp_path, monkeypatch):
    import ablations.run.bench as bench

    def fake_measure(cfg, B, T, device, **kw):
        if T == 4096:
            return {"status": "oom", "error": "out of memory"}
        return {"status": "ok", "error": None, "tokens_per_s": 1000.0, "peak_mem_bytes": T, "saved_bytes": T}

    monkeypatch.setattr(bench, "measure", fake_measure)
    args = ["bench", "memory", "--variants", "bert", "--size", "tiny", "--out", str(tmp_path)]
    assert cli([*args, "--seq-lens", "8192,512,4096"]) == 0
    rows = read_rows(tmp_path / "bench.jsonl")
    assert [(r.seq_len, r.status, r.skipped) for r in rows] == [
        (512, "ok", False), (4096, "oom", False), (8192, "oom", True)]
    monkeypatch.setattr(bench, "measure", lambda cfg, B, T, device, **kw: {"status": "ok", "tokens_per_s": 1.0})
    assert cli([*args, "--seq-lens", "8192"]) == 0  # the skipped length is measured now
    assert read_rows(tmp_path / "bench.jsonl")[-1].status == "ok"
    assert cli([*args, "--seq-lens", "512,x"]) == 2


def test_bench_exits_non_zero_only_on_errors(tmp_path, monkeypatch, capsys):
    import ablations.run.bench as bench

    def broken(cfg, B, T, device, **kw):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(bench, "measure", broken)
    assert cli(["bench", "speed", "--variants", "bert", "--seq-lens", "128", "--size", "tiny",
                "--out", str(tmp_path)]) == 1
    assert "error: bert @ 128: RuntimeError: kernel exploded" in capsys.readouterr().err
    assert json.loads((tmp_path / "bench.jsonl").read_text())["status"] == "error"
