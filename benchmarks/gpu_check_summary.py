"""The figures of one `gpu_check.sh` run, gathered from what its parts left in OUT: one
JSON file (OUT/gpu_check.json) and a short markdown summary (OUT/gpu_check.md).

Standard library only, and every part optional: a part that failed or timed out left
little or nothing, and the summary says so instead of failing itself.

    python benchmarks/gpu_check_summary.py OUT
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MIB = 2**20


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def tests(path: Path) -> dict | None:
    """Each test's outcome from pytest's junit XML."""
    if not path.is_file():
        return None
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = (node.get("message") or "").splitlines()[0][:300] if node.get("message") else ""
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "message": message})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    return {"counts": counts, "cases": cases}


def seq_bench(path: Path) -> list[dict]:
    keep = ("variant", "size", "seq_len", "batch_size", "status", "tokens_per_s", "peak_mem_bytes", "error")
    return [{k: r.get(k) for k in keep} for r in _jsonl(path) if r.get("mode") == "both" or "mode" not in r]


def run(directory: Path, resume_log: Path) -> dict | None:
    """The runner end to end: one row per arm, the report and plots, and the re-run's skips."""
    if not directory.is_dir():
        return None
    rows = _jsonl(directory / "results.jsonl")
    keep = ("arm", "status", "steps", "tokens_seen", "train_tokens_per_s", "tokens_per_s", "peak_mem_bytes",
            "eval_mlm_loss", "error")
    arms = [r.get("arm") for r in rows]
    resumed = resume_log.read_text().count("finished earlier") if resume_log.is_file() else None
    return {"rows": [{k: r.get(k) for k in keep} for r in rows], "arms": len(set(arms)),
            "duplicate_rows": len(arms) - len(set(arms)), "report": (directory / "report.md").is_file(),
            "plots": sorted(str(p.relative_to(directory)) for p in directory.rglob("*.png")),
            "skipped_on_rerun": resumed}


def torchrun(directory: Path, log: Path) -> dict | None:
    result = _json(directory / "result.json")
    ranks = [line for line in log.read_text().splitlines() if line.startswith("rank ")] if log.is_file() else []
    if result is None and not ranks:
        return None
    loss = (result or {}).get("train_loss") or []
    return {"ranks": ranks, "steps": len(loss), "first_loss": loss[0][1] if loss else None,
            "last_loss": loss[-1][1] if loss else None, "eval_mlm_loss": (result or {}).get("eval_mlm_loss")}


def gather(out: Path) -> dict:
    return {"parts": _jsonl(out / "parts" / "status.jsonl"), "tests": tests(out / "parts" / "tests.xml"),
            "train_step": _json(out / "parts" / "train_step.json"),
            "modern_step": _json(out / "parts" / "modern_step.json"),
            "seq_bench": seq_bench(out / "seq-bench" / "bench.jsonl"),
            "run": run(out / "run", out / "logs" / "resume.log"),
            "torchrun": torchrun(out / "torchrun", out / "logs" / "torchrun.log")}


def _num(x, fmt: str = ",.0f", scale: float = 1.0) -> str:
    return "–" if x is None else format(x / scale, fmt)


def markdown(f: dict) -> str:
    lines = ["# GPU check", "", "| part | status | seconds (limit) |", "| --- | --- | --- |"]
    lines += [f"| {p['part']} | {p['status']} | {p['seconds']} ({p['limit_s']}) |" for p in f["parts"]]
    if f["tests"]:
        c = f["tests"]["counts"]
        lines += ["", f"**Tests**: {c['passed']} passed, {c['failed'] + c['error']} failed, {c['skipped']} skipped"]
        lines += [f"- {t['test']}: {t['outcome']} {t['message']}" for t in f["tests"]["cases"] if t["outcome"] != "passed"]
    ts = f["train_step"]
    if ts:
        u, r = ts.get("utilisation", {}), ts["bert"]["train hf/ours"]
        lines += ["", f"**bert {ts['size']} vs HF BertForPreTraining** ({ts['batch']}x{ts['seq']}, V={ts['vocab']}, "
                  f"{ts['precision']}, SDPA, {ts['device']}): ours {r['median']:.2f}x faster "
                  f"(min {r['min']:.2f}, max {r['max']:.2f})"]
        for side in ("ours", "hf"):
            s = u.get(side)
            if s:
                mfu = f"MFU {s['mfu']:.1%} of the chip's bf16 dense peak" if s.get("mfu") else "MFU: chip peak unknown"
                lines.append(f"- {side}: step {s['step_s'] * 1e3:.1f} ms, {s['achieved_flops'] / 1e12:.1f} TFLOP/s, "
                             f"{mfu}, {s['of_matmul_peak']:.0%} of the matmul timed in the same run "
                             f"({s['matmul_peak_flops'] / 1e12:.0f} TFLOP/s)")
    ms = f.get("modern_step")
    if ms:
        lines += ["", f"**modernbert mini vs HF ModernBertForMaskedLM** ({ms['precision']}, {ms['device']}): " + "; ".join(
            f"{T} tokens: ours {v['tokens_per_s']['ours']:,.0f} tok/s, HF {v['tokens_per_s']['hf']:,.0f}, ours "
            f"{v['ratio']['median']:.2f}x (min {v['ratio']['min']:.2f}, max {v['ratio']['max']:.2f})"
            for T, v in ms["lengths"].items())]
    if f["seq_bench"]:
        lines += ["", "**bert vs reformer vs modernbert, long sequences** (training step)", "",
                  "| variant | tokens | batch | status | tokens/s | peak MiB |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['variant']} | {r['seq_len']} | {r['batch_size']} | {r['status']} | "
                  f"{_num(r['tokens_per_s'])} | {_num(r['peak_mem_bytes'], scale=MIB)} |" for r in f["seq_bench"]]
    if f["run"]:
        g = f["run"]
        ok = sum(r["status"] == "ok" for r in g["rows"])
        lines += ["", f"**run albert_reformer --budget gpu**: {ok} of {g['arms']} arms ok, report "
                  f"{'written' if g['report'] else 'missing'}, {len(g['plots'])} plots; re-run skipped "
                  f"{g['skipped_on_rerun']} finished arms, {g['duplicate_rows']} duplicate rows"]
    if f["torchrun"]:
        t = f["torchrun"]
        lines += ["", f"**torchrun --nproc-per-node 1**: {'; '.join(t['ranks']) or 'no rank line'}; {t['steps']} "
                  f"steps, loss {_num(t['first_loss'], '.3f')} -> {_num(t['last_loss'], '.3f')}, eval MLM loss "
                  f"{_num(t['eval_mlm_loss'], '.3f')}"]
    return "\n".join(lines) + "\n"


def main(out: str) -> None:
    out_dir = Path(out)
    figures = gather(out_dir)
    (out_dir / "gpu_check.json").write_text(json.dumps(figures, indent=1, default=str))
    (out_dir / "gpu_check.md").write_text(markdown(figures))


if __name__ == "__main__":
    main(sys.argv[1])
