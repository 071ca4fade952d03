"""Is an idea worth its compute? The report's opening section, from three answers:

- the equal-compute difference (`ablations.analysis.equal_compute`): each arm against its
  comparison arm at the same training FLOPs, not the same tokens;
- the Pareto fronts (`ablations.analysis.pareto`): which arms no other arm beats on both loss and
  cost, per cost axis and over all of them;
- the crossover (`ablations.analysis.crossover`): the compute at which an arm's fitted loss curve
  meets its comparison arm's, where there are enough points to fit.

`analyse` computes them from a run's rows and `csv_columns` gives results.csv its per-arm
columns; `ablations.report.worth` writes them as the report's opening section.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ablations.analysis.costs import AXES, curve, loss_points, row_flops
from ablations.analysis.crossover import Crossover, find_crossover
from ablations.analysis.equal_compute import EqualCompute, equal_compute_all
from ablations.analysis.pareto import Fronts, pareto_fronts
from ablations.analysis.verdicts import ArmStats

AXIS_NAMES = {"flops": "FLOPs", "seconds": "seconds", "memory": "memory", "params": "params", "tokens": "tokens"}


@dataclass
class Worth:
    fronts: Fronts
    axis: str                                   # the equal-compute and crossover axis: flops, else tokens
    equal: dict[str, EqualCompute] = field(default_factory=dict)
    crossovers: dict[str, Crossover] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compute_axis(arms: dict[str, ArmStats]) -> str:
    """FLOPs when every curve point has a FLOPs figure (measured or derived), else tokens."""
    rows = [r for st in arms.values() for r in st.rows.values()]
    has = lambda r: len(curve(r, "flops")) == len(curve(r, "tokens"))
    return "flops" if rows and all(has(r) for r in rows) else "tokens"


def analyse(rows: list[dict], arms: dict[str, ArmStats]) -> Worth:
    """rows: every row of the run (ladder rungs included); arms: the final rows, collected."""
    axis = compute_axis(arms)
    worth = Worth(pareto_fronts(arms), axis, equal_compute_all(arms, axis))
    for name, eq in worth.equal.items():
        arm_pts, source = loss_points(rows, name, axis)
        ref_pts, _ = loss_points(rows, eq.ref, axis)
        worth.crossovers[name] = find_crossover(arm_pts, ref_pts, (name, eq.ref), AXIS_NAMES[axis], source)
    worth.notes = _notes(arms, worth)
    return worth


def _notes(arms: dict[str, ArmStats], worth: Worth) -> list[str]:
    notes = []
    rows = [r for st in arms.values() for r in st.rows.values()]
    if any(r.get("train_flops") is None and row_flops(r) is not None for r in rows):
        notes.append("Training FLOPs of rows without a measured `train_flops` are tokens × the analytic FLOPs per "
                     "token (the cost model's estimate).")
    if worth.axis != "flops":
        notes.append("No FLOPs figures in these rows: the equal-compute differences are at equal tokens.")
    missing = [AXIS_NAMES[x] for x in AXES if x not in worth.fronts.axes]
    if missing:
        notes.append(f"Not every arm has a figure for {', '.join(missing)}: the all-costs front leaves "
                     f"{'it' if len(missing) == 1 else 'them'} out.")
    notes += _budget_notes(rows)
    if any(eq.mismatch for eq in worth.equal.values()):
        notes.append("Some equal-compute differences are not judged: at the common budget one arm had finished its "
                     "learning-rate decay and the other had not, which alone makes the second one's loss higher. "
                     "`--flops N` gives every arm the same compute (they then all end at N); `--ladder K` gives "
                     "budget-matched points.")
    if any(xo.source == "curve" and xo.kind != "fit failed" for xo in worth.crossovers.values()):
        notes.append("Crossovers fitted to curve points are indicative: the points of one run under a decaying "
                     "schedule are not the losses of runs with those budgets. `--ladder K` fits budget-matched "
                     "rungs.")
    return notes


def _budget_notes(rows: list[dict]) -> list[str]:
    """Whether the arms tie on one budget by design: the same budget, and every row stopped
    by it (`stopped_by`: a row trained under a time limit beside a token budget may stop on
    time, and then its arm had other data than the rest)."""
    kinds = {r.get("stopped_by") or r.get("budget_kind") for r in rows} - {None}
    budgets = {tuple((r.get("config") or {}).get(f"train.max_{k}") or None for k in ("flops", "tokens", "steps",
                                                                                  "seconds")) for r in rows}
    if len(kinds) == 1 and len(budgets) == 1:
        return [f"Every arm had the same {kinds.pop()} budget: on that axis the arms tie by design."]
    stops = {}
    for r in rows:
        stops.setdefault(r.get("stopped_by") or r.get("budget_kind") or "?", []).append(r["arm"])
    if len(stops) > 1:
        return ["The arms were not stopped by one budget (" + "; ".join(
            f"{kind}: {', '.join(sorted(set(arms)))}" for kind, arms in sorted(stops.items()))
            + "), so they do not tie on any axis by design: compare them at equal tokens or FLOPs."]
    return ["The arms trained under different budgets (a re-run with another budget, or arms that set their own): "
            "compare them at equal tokens or FLOPs."]


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
                     "crossover": w.crossovers[name].text if name in w.crossovers else None}
    return out
