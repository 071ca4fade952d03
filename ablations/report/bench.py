"""The bench report: memory and speed against sequence length (`ablations.run.bench` rows)."""
from __future__ import annotations

from pathlib import Path

from ablations.report.console import print_table
from ablations.report.plots import plot_bench
from ablations.report.results_csv import write_csv
from ablations.report.tables import fmt, md_table, mib
from ablations.rows import BenchRow
from ablations.rundir import BENCH_CSV


def bench_report(rows: list[BenchRow], out: Path, console) -> str:
    latest = {(r.variant, r.seq_len): r for r in rows}
    ordered = sorted(latest.values(), key=lambda r: (r.variant, r.seq_len))
    headers = ["variant", "seq len", "batch", "status", "train tok/s", "infer tok/s", "peak mem", "saved for bwd"]
    table = [[r.variant, str(r.seq_len), str(r.batch_size), r.status,
              fmt(r.tokens_per_s, lambda v: f"{v:,.0f}"), fmt(r.infer_tokens_per_s, lambda v: f"{v:,.0f}"),
              fmt(r.peak_mem_bytes, mib), fmt(r.saved_bytes, mib)] for r in ordered]
    first = ordered[0]
    md = ["# Memory and speed against sequence length", "", f"- Device: {first.device}",
          f"- Size {first.size}; batch adjusted to a constant number of tokens per batch", "",
          md_table(headers, table), ""]
    plots = plot_bench(rows, out)
    md += [f"![{p}]({p})" for p in plots] + [""]
    write_csv(ordered, out / BENCH_CSV)
    if console is not None:
        print_table(console, "bench", headers, table)
    return "\n".join(md)
