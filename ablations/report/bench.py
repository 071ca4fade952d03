"""The bench report: memory and speed against sequence length (`ablations.run.bench` rows)."""
from __future__ import annotations

from pathlib import Path

from ablations.analysis.seq_crossover import Crossover, crossovers, growth_exponents
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
    if len({r.variant for r in ordered}) > 1 and any(r.variant == "bert" for r in ordered):
        md += ["## Where each kind starts to pay", "",
               "Against `bert` (full attention), on the machine that measured them. Time is one timed "
               "measurement per length (not interleaved rounds), so a crossing in time is indicative; "
               "memory is measured in a fresh process.", ""]
        md += [f"- {line}" for line in crossover_lines(rows)] + [""]
    plots = plot_bench(rows, out)
    md += [f"![{p}]({p})" for p in plots] + [""]
    write_csv(ordered, out / BENCH_CSV)
    if console is not None:
        print_table(console, "bench", headers, table)
    return "\n".join(md)


def crossover_line(c: Crossover) -> str:
    """One crossover in words: from which length `c.variant` is cheaper than its baseline."""
    what = {"time": "time per token", "memory": "peak memory", "saved": "memory saved for backward"}[c.metric]
    lengths = c.measured
    if not lengths:
        return f"{c.variant} vs {c.baseline}, {what}: not measured side by side"
    span = f"{lengths[0]:,}-{lengths[-1]:,} tokens"
    if c.length is None:
        return f"{c.variant} is not cheaper than {c.baseline} in {what} at {lengths[-1]:,} tokens ({span})"
    if c.length == lengths[0]:
        return f"{c.variant} is cheaper than {c.baseline} in {what} at every length measured ({span})"
    near = f" (crossing at about {c.interpolated:,.0f})" if c.interpolated else ""
    return f"{c.variant} is cheaper than {c.baseline} in {what} from {c.length:,} tokens{near} ({span})"


def crossover_lines(rows, baseline: str = "bert", variants=None) -> list[str]:
    """Per variant, where it becomes cheaper than the baseline in time and in peak memory, and
    how its memory saved for backward grows with length."""
    rows = list(rows)
    lines = [crossover_line(c) for c in crossovers(rows, baseline, variants)]
    lines += [f"{v}: memory saved for backward per sequence grows as T^{p:.2f} over the longest lengths"
              for v, p in growth_exponents(rows, baseline, variants).items()]
    return lines
