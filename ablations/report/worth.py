"""The report's opening section: is an idea worth its compute? (`ablations.analysis.worth`)"""
from __future__ import annotations

from pathlib import Path

from ablations.analysis.costs import AXES
from ablations.analysis.pareto import COST_RTOL
from ablations.analysis.verdicts import ArmStats
from ablations.analysis.worth import AXIS_NAMES, Worth, verdict_cells
from ablations.report.plots import plot_pareto
from ablations.report.tables import cost_text, md_table


def _worth_table(arms: dict[str, ArmStats], w: Worth) -> list[str]:
    headers = ["arm", "vs", "training FLOPs", "seconds", "peak memory", "unique params",
               f"Δ MLM loss at equal {AXIS_NAMES[w.axis]}", "verdict", "on the front (all costs)", "2-D fronts",
               "crossover"]
    table = []
    for name in arms:
        p = w.fronts.points.get(name)
        if p is None:
            continue
        eq, xo = w.equal.get(name), w.crossovers.get(name)
        diff, word = verdict_cells(eq)
        on = "yes" if name in w.fronts.all_axes else ("no" if w.fronts.axes else "–")
        two_d = ", ".join(AXIS_NAMES[x] for x, names in w.fronts.per_axis.items() if name in names) or "none"
        table.append([name, eq.ref if eq else "–"] + [cost_text(x, p.costs.get(x)) for x in AXES]
                     + [diff, word, on, two_d, xo.short if xo else "–"])
    return [md_table(headers, table)]


def section(arms: dict[str, ArmStats], w: Worth, out: Path) -> list[str]:
    """The report's opening section: Pareto plots, the table, the equal-compute lines, notes."""
    points = {x: [(n, p.costs[x], p.loss, p.loss_se) for n, p in w.fronts.points.items() if x in p.costs]
              for x in AXES}
    plots = plot_pareto(points, w.fronts.per_axis, out)
    md = ["## Is it worth its compute?", "",
          "Final held-out MLM loss (mean over seeds, ± SE) against each cost; the line is the front: the arms "
          "no other arm beats, where *beats* means at most as costly on every cost and lower in loss beyond "
          f"noise, or tied within noise and strictly cheaper (costs within {COST_RTOL:.0%} are equal). Error "
          "bars are each arm's own standard error; dominance uses the far smaller paired noise of the "
          "difference (per seed and per example), as the verdicts do. "
          "Δ at equal compute: arm − reference, interpolated on each seed's eval curve at the largest budget "
          "every arm reached, paired over seeds and per example. See docs/reading-a-report.md.", ""]
    md += [f"![{p}]({p})" for p in plots] + [""] if plots else []
    md += _worth_table(arms, w) + [""]
    for name, eq in w.equal.items():
        md.append(f"- {name} vs {eq.ref} at {eq.budget:.3g} {AXIS_NAMES[w.axis]}: {eq.words()}.")
    for name, xo in w.crossovers.items():
        if xo.kind != "fit failed":
            md.append(f"- Crossover of {name} and {w.equal[name].ref} (power-law fits of {xo.source} points): "
                      f"{xo.text}.")
    md += [""] + [f"> {n}" for n in w.notes] + ([""] if w.notes else [])
    return md
