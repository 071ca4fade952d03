"""Render a run directory: report.md, results.csv / bench.csv and the plots, from its files alone.

`python -m ablations report DIR` re-renders a report at any time, on any machine, without
re-running anything: everything a report says comes from the run directory (rows,
speed.json, spec.json), never from the catalogue of this version.
"""
from __future__ import annotations

from pathlib import Path

from ablations.report.bench import bench_report
from ablations.report.downstream import downstream_markdown
from ablations.report.training import training_report
from ablations.rundir import BENCH, REPORT, RESULTS, check_contained, read_bench, read_results, write_text


def render_report(out: str | Path, console=None, x: str = "tokens") -> Path:
    """report.md, results.csv and the plots of a run directory; x: the axis of the eval-loss
    curves (tokens, flops or seconds)."""
    out = Path(out)
    check_contained(out)  # report.md, results.csv and the plots are never written through a link
    results, bench = read_results(out), read_bench(out / BENCH)
    if not results and not bench:
        raise FileNotFoundError(f"no {RESULTS} or {BENCH} in {out}: run an ablation or a bench there first")
    parts = []
    if results:
        parts.append(training_report(results, out, console, x))
        parts.append(downstream_markdown(results))  # "" when no arm was fine-tuned
    if bench:
        parts.append(bench_report(bench, out, console))
    path = out / REPORT
    write_text(path, "\n\n".join(p for p in parts if p))
    if console is not None:
        console.print(f"report: {path}")
    return path
