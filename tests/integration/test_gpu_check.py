"""benchmarks/gpu_check.sh without a GPU: its dry run lists every part with its time limit,
bad arguments are one-line errors, and the summary gathers what the parts leave behind."""
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from tests import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = ("reformer_pytorch-1.4.4", "axial_positional_embedding-0.3.12", "local_attention-1.11.2",
          "product_key_memory-0.3.0", "CoLT5_attention-0.11.2", "hyper_connections-0.4.11",
          "torch_einops_utils-0.2.0", "rich_argparse-1.8.0")


@pytest.fixture
def wheels(tmp_path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in WHEELS:
        (folder / f"{name}-py3-none-any.whl").write_bytes(b"")
    return folder


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_the_dry_run_lists_every_part_within_eight_minutes(wheels, tmp_path):
    out = tmp_path / "out"
    done = gpu_check(str(wheels), "--dry-run", "--out", str(out), "--tokens", "65536")
    assert done.returncode == 0, done.stderr
    parts = {line.split()[0]: line for line in done.stdout.splitlines() if "(limit" in line}
    assert list(parts) == ["install", "tests", "train_step", "modern_step", "seq_bench", "run", "resume", "torchrun"]
    assert f"--no-index --find-links {wheels} reformer-pytorch rich-argparse" in parts["install"]
    assert "tests/unit/core/test_cuda.py tests/integration/test_distributed.py::test_nccl_ranks_on_every_visible_gpu" in parts["tests"]
    assert "--device cuda --bf16 --size base --batch 32 --seq 512" in parts["train_step"]
    assert "bench_modernbert.py --device cuda --bf16 --lengths 512,2048" in parts["modern_step"]
    assert "bench both --variants bert,reformer,modernbert --seq-lens 4096,8192" in parts["seq_bench"]
    assert "run albert_reformer --budget gpu --tokens 65536 --device cuda" in parts["run"]
    assert parts["resume"].split(": ", 1)[1] == parts["run"].split(": ", 1)[1]  # the same command again
    assert "torch.distributed.run --standalone --nproc-per-node 1" in parts["torchrun"]
    limits = [int(line.split("limit")[1].split("s)")[0]) for line in parts.values()]
    assert sum(limits) <= 480 and f"limits add up to {sum(limits)}s" in done.stdout
    assert not out.exists()  # a dry run creates nothing


@pytest.mark.parametrize("args, message", [
    ([], "no wheel folder given"),
    (["{missing}"], "not found: download the wheels into it first"),
    (["{empty}"], "lacks reformer_pytorch axial_positional_embedding"),
    (["{wheels}", "--tokens", "10k"], "--tokens must be a positive integer"),
    (["{wheels}", "--frob"], "unknown option --frob"),
    (["{wheels}", "{wheels}"], "one wheel folder expected"),
    (["{wheels}", "--out"], "--out needs a value"),
])
def test_bad_arguments_are_one_line_errors(wheels, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"wheels": wheels, "missing": tmp_path / "nope", "empty": tmp_path / "empty"}
    done = gpu_check(*[a.format(**paths) for a in args], "--dry-run")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu_check.sh: ") and message in done.stderr


def test_one_missing_wheel_is_named(wheels):
    (wheels / "hyper_connections-0.4.11-py3-none-any.whl").unlink()
    done = gpu_check(str(wheels), "--dry-run")
    assert done.returncode == 2 and "lacks hyper_connections:" in done.stderr


def summary_module():
    spec = importlib.util.spec_from_file_location("gpu_check_summary", ROOT / "benchmarks" / "gpu_check_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_summary_gathers_the_parts_and_survives_the_missing_ones(tmp_path):
    out = tmp_path
    (out / "parts").mkdir()
    (out / "logs").mkdir()
    status = [{"part": "tests", "status": "ok", "rc": 0, "seconds": 40.1, "limit_s": 90},
              {"part": "seq_bench", "status": "timeout", "rc": 124, "seconds": 75.0, "limit_s": 75}]
    (out / "parts" / "status.jsonl").write_text("".join(json.dumps(s) + "\n" for s in status))
    (out / "parts" / "tests.xml").write_text(
        '<testsuites><testsuite><testcase classname="tests.unit.core.test_cuda" name="test_a"/>'
        '<testcase classname="tests.unit.core.test_cuda" name="test_b"><failure message="AssertionError: 3 != 4\nmore"/>'
        '</testcase></testsuite></testsuites>')
    util = {"step_s": 0.25, "achieved_flops": 4.0e14, "mfu": 0.4044, "of_matmul_peak": 0.55,
            "matmul_peak_flops": 7.3e14}
    (out / "parts" / "train_step.json").write_text(json.dumps({
        "device": "NVIDIA H200", "precision": "bf16", "size": "base", "batch": 32, "seq": 512, "vocab": 30522,
        "bert": {"train hf/ours": {"median": 1.5, "min": 1.4, "max": 1.6}},
        "utilisation": {"ours": util, "hf": {**util, "mfu": None}}}))
    (out / "run").mkdir()
    rows = [{"arm": "bert", "status": "ok", "steps": 2}, {"arm": "+lsh", "status": "ok", "steps": 2}]
    (out / "run" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "run" / "report.md").write_text("# report\n")
    (out / "run" / "plots").mkdir()
    (out / "run" / "plots" / "loss.png").write_bytes(b"")
    (out / "logs" / "resume.log").write_text("bert: finished earlier (ok), skipped\n+lsh: finished earlier (ok), skipped\n")
    summary_module().main(str(out))
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["tests"]["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert figures["run"] == {"rows": figures["run"]["rows"], "arms": 2, "duplicate_rows": 0, "report": True,
                              "plots": ["plots/loss.png"], "skipped_on_rerun": 2}
    assert figures["seq_bench"] == [] and figures["torchrun"] is None  # parts that left nothing
    text = (out / "gpu_check.md").read_text()
    assert "| seq_bench | timeout | 75.0 (75) |" in text
    assert "tests.unit.core.test_cuda::test_b: failed AssertionError: 3 != 4" in text
    assert "ours 1.50x faster" in text and "MFU 40.4% of the chip's bf16 dense peak" in text
    assert "MFU: chip peak unknown" in text
    assert "2 of 2 arms ok, report written, 1 plots; re-run skipped 2 finished arms" in text
