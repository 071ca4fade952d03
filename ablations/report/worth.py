"""The report's opening section: is an idea worth its compute? (`ablations.analysis.worth`),
and the words for its numbers: equal-compute verdicts, crossovers, notes."""
from __future__ import annotations

import math
from pathlib import Path

from ablations.analysis.costs import AXES
from ablations.analysis.crossover import SEARCH, CrossKind, Crossover, CrossWhy
from ablations.analysis.equal_compute import EqualCompute, Mismatch
from ablations.analysis.pareto import COST_RTOL
from ablations.analysis.verdicts import ArmStats
from ablations.analysis.worth import Note, NoteKind, Worth, budget_note
from ablations.report.plots import plot_pareto
from ablations.report.tables import cost_text, md_table
from ablations.report.verdicts import describe
from ablations.rows import Row

AXIS_NAMES = {"flops": "FLOPs", "seconds": "seconds", "memory": "memory", "params": "params", "tokens": "tokens"}


# -- words -------------------------------------------------------------------------------------------
def mismatch_words(m: Mismatch) -> str:
    return (f"at this budget {m.arm} is {m.arm_fraction:.0%} and {m.ref} {m.ref_fraction:.0%} through their "
            "learning-rate schedules (their budgets differ on this axis); give every arm the same budget on it "
            "(`--flops N`) or use `--ladder K`")


def equal_compute_words(eq: EqualCompute) -> str:
    if eq.difference is None:
        return "no curve points at this budget"
    if eq.mismatch:
        return f"MLM loss {eq.difference.diff:+.3g}, not judged: {mismatch_words(eq.mismatch)}"
    return describe(eq.difference, "MLM loss")


def verdict_cells(eq: EqualCompute | None) -> tuple[str, str]:
    """(Δ, verdict) table cells."""
    d = eq.difference if eq else None
    if d is None:
        return "–", "–"
    if eq.mismatch:
        return f"{d.diff:+.3g}", "not judged: schedules differ at this budget"
    real, noise = d.verdict
    if math.isnan(noise):
        return f"{d.diff:+.3g}", "not judged (noise unknown)"
    if not real:
        return f"{d.diff:+.3g}", f"within noise (±{noise:.2g})"
    return f"{d.diff:+.3g}", f"{'lower' if d.diff < 0 else 'higher'} (beyond ±{noise:.2g})"


_FIT_FAILED = {CrossWhy.NO_SEED: "no seed with points for both arms",
               CrossWhy.TOO_FEW: "fit failed: too few points (4 distinct budgets needed) or no convergence",
               CrossWhy.NO_OVERLAP: "fit failed: the two arms' compute ranges do not overlap"}


def crossover_text(xo: Crossover, unit: str = "FLOPs") -> str:
    """The outcome in a sentence: where the fits cross, or why that is not known."""
    if xo.kind == CrossKind.FIT_FAILED:
        return _FIT_FAILED[xo.why]
    if xo.why == CrossWhy.RESAMPLES_FAILED:
        return f"inconclusive: the fit failed on {xo.failed} of {xo.n_boot} seed resamples"
    if xo.at is None:
        window = f"[{xo.c_min:.3g}, {SEARCH * xo.c_max:.3g}] {unit}"
        if xo.kind == CrossKind.NONE:
            return f"no crossover within {window}: {xo.lower} lower throughout"
        why = "one seed gives no interval" if xo.seeds < 2 else \
            f"{xo.crossed} of {xo.resamples} seed resamples cross"
        return f"inconclusive: the fits do not cross within {window} ({xo.lower} lower), but {why}"
    sides = f"{xo.lower} lower below it, {xo.other} above"
    if xo.why == CrossWhy.ONE_SEED:
        return f"inconclusive: the fits cross at {xo.at:.3g} {unit} ({sides}); one seed gives no interval"
    if xo.why == CrossWhy.TOO_WIDE:
        span = f"[{xo.lo:.3g}, {'∞' if math.isinf(xo.hi) else f'{xo.hi:.3g}'}]"
        return f"inconclusive: the fits cross at {xo.at:.3g} {unit} but the 95% interval {span} " \
            f"is wider than the measured range [{xo.c_min:.3g}, {xo.c_max:.3g}]"
    label = " (extrapolation: beyond 10× the largest measured budget)" if xo.extrapolation else \
        " (beyond the measured range)" if xo.beyond_range else ""
    return f"crosses at {xo.at:.3g} {unit} [{xo.lo:.3g}, {xo.hi:.3g}]{label}: {sides}"


def crossover_short(xo: Crossover) -> str:
    """A table cell: the outcome and the interval."""
    if xo.kind == CrossKind.CROSSES:
        return f"crosses at {xo.at:.3g} [{xo.lo:.3g}, {xo.hi:.3g}]" + (" (extrapolation)" if xo.extrapolation else "")
    if xo.kind == CrossKind.NONE:
        return f"none within [{xo.c_min:.3g}, {SEARCH * xo.c_max:.3g}]"
    return "too few points" if xo.why == CrossWhy.TOO_FEW else str(xo.kind)


def note_words(n: Note) -> str:
    if n.kind == NoteKind.DERIVED_FLOPS:
        return ("Training FLOPs of rows without a measured `train_flops` are tokens × the analytic FLOPs per "
                "token (the cost model's estimate).")
    if n.kind == NoteKind.NO_FLOPS:
        return "No FLOPs figures in these rows: the equal-compute differences are at equal tokens."
    if n.kind == NoteKind.AXES_MISSING:
        missing = [AXIS_NAMES[x] for x in n.axes]
        return (f"Not every arm has a figure for {', '.join(missing)}: the all-costs front leaves "
                f"{'it' if len(missing) == 1 else 'them'} out.")
    if n.kind == NoteKind.SAME_BUDGET:
        return f"Every arm had the same {n.budget} budget: on that axis the arms tie by design."
    if n.kind == NoteKind.MIXED_STOPS:
        return ("The arms were not stopped by one budget (" + "; ".join(
            f"{kind}: {', '.join(arms)}" for kind, arms in n.stops.items())
            + "), so they do not tie on any axis by design: compare them at equal tokens or FLOPs.")
    if n.kind == NoteKind.DIFFERENT_BUDGETS:
        return ("The arms trained under different budgets (a re-run with another budget, or arms that set their "
                "own): compare them at equal tokens or FLOPs.")
    if n.kind == NoteKind.SCHEDULES_DIFFER:
        return ("Some equal-compute differences are not judged: at the common budget one arm had finished its "
                "learning-rate decay and the other had not, which alone makes the second one's loss higher. "
                "`--flops N` gives every arm the same compute (they then all end at N); `--ladder K` gives "
                "budget-matched points.")
    return ("Crossovers fitted to curve points are indicative: the points of one run under a decaying "
            "schedule are not the losses of runs with those budgets. `--ladder K` fits budget-matched rungs.")


def budget_notes(rows: list[Row]) -> list[str]:
    """Whether the arms tie on one budget by design, in words (`analysis.worth.budget_note`)."""
    return [note_words(budget_note(rows))]


def csv_columns(w: Worth) -> dict[str, dict]:
    """arm -> the columns results.csv gains: on the fronts, and the equal-compute difference and verdict."""
    out = {}
    for name in w.fronts.points:
        eq = w.equal.get(name)
        diff, word = verdict_cells(eq)
        out[name] = {"on_front": name in w.fronts.all_axes,
                     **{f"on_front_{x}": name in names for x, names in w.fronts.per_axis.items()},
                     "equal_compute_axis": w.axis if eq else None,
                     "equal_compute_budget": eq.budget if eq else None,
                     "equal_compute_diff": eq.difference.diff if eq and eq.difference else None,
                     "equal_compute_verdict": word if eq and eq.difference else None,
                     "crossover": crossover_text(w.crossovers[name], AXIS_NAMES[w.axis])
                     if name in w.crossovers else None}
    return out


# -- the section ---------------------------------------------------------------------------------------
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
                     + [diff, word, on, two_d, crossover_short(xo) if xo else "–"])
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
        md.append(f"- {name} vs {eq.ref} at {eq.budget:.3g} {AXIS_NAMES[w.axis]}: {equal_compute_words(eq)}.")
    for name, xo in w.crossovers.items():
        if xo.kind != CrossKind.FIT_FAILED:
            md.append(f"- Crossover of {name} and {w.equal[name].ref} (power-law fits of {xo.source} points): "
                      f"{crossover_text(xo, AXIS_NAMES[w.axis])}.")
    notes = [note_words(n) for n in w.notes]
    md += [""] + [f"> {n}" for n in notes] + ([""] if notes else [])
    return md
