"""Is an idea worth its compute? The report's opening section, from three answers:

- the equal-compute difference (`ablations.analysis.equal_compute`): each arm against its
  comparison arm at the same training FLOPs, not the same tokens;
- the Pareto fronts (`ablations.analysis.pareto`): which arms no other arm beats on both loss and
  cost, per cost axis and over all of them;
- the crossover (`ablations.analysis.crossover`): the compute at which an arm's fitted loss curve
  meets its comparison arm's, where there are enough points to fit.

`analyse` computes them from a run's rows, with the notes a reader needs beside them (as
`Note`s); `ablations.report.worth` writes them as the report's opening section and gives
results.csv its per-arm columns.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ablations.analysis.costs import AXES, curve, loss_points, row_flops
from ablations.analysis.crossover import CrossKind, Crossover, find_crossover
from ablations.analysis.equal_compute import EqualCompute, equal_compute_all
from ablations.analysis.pareto import Fronts, pareto_fronts
from ablations.analysis.verdicts import ArmStats
from ablations.rows import Row


class NoteKind(StrEnum):
    DERIVED_FLOPS = "derived FLOPs"           # some rows' training FLOPs are tokens x the analytic FLOPs per token
    NO_FLOPS = "no FLOPs"                     # the equal-compute differences are at equal tokens
    AXES_MISSING = "axes missing"             # the all-costs front leaves `axes` out
    SAME_BUDGET = "same budget"               # every arm had the same `budget` budget: they tie on it by design
    MIXED_STOPS = "mixed stops"               # the arms were stopped by different budgets (`stops`)
    DIFFERENT_BUDGETS = "different budgets"   # the arms trained under different budgets
    SCHEDULES_DIFFER = "schedules differ"     # some equal-compute differences are not judged
    CURVE_CROSSOVERS = "curve crossovers"     # crossovers fitted to curve points are indicative


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    axes: tuple[str, ...] = ()                                    # AXES_MISSING
    budget: str | None = None                                     # SAME_BUDGET
    stops: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # MIXED_STOPS: budget -> the arms it stopped


@dataclass
class Worth:
    fronts: Fronts
    axis: str                                   # the equal-compute and crossover axis: flops, else tokens
    equal: dict[str, EqualCompute] = field(default_factory=dict)
    crossovers: dict[str, Crossover] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


def compute_axis(arms: dict[str, ArmStats]) -> str:
    """FLOPs when every curve point has a FLOPs figure (measured or derived), else tokens."""
    rows = [r for st in arms.values() for r in st.rows.values()]
    has = lambda r: len(curve(r, "flops")) == len(curve(r, "tokens"))
    return "flops" if rows and all(has(r) for r in rows) else "tokens"


def analyse(rows: list[Row], arms: dict[str, ArmStats]) -> Worth:
    """rows: every row of the run (ladder rungs included); arms: the final rows, collected."""
    axis = compute_axis(arms)
    worth = Worth(pareto_fronts(arms), axis, equal_compute_all(arms, axis))
    for name, eq in worth.equal.items():
        arm_pts, source = loss_points(rows, name, axis)
        ref_pts, _ = loss_points(rows, eq.ref, axis)
        worth.crossovers[name] = find_crossover(arm_pts, ref_pts, (name, eq.ref), source)
    worth.notes = _notes(arms, worth)
    return worth


def _notes(arms: dict[str, ArmStats], worth: Worth) -> list[Note]:
    notes = []
    rows = [r for st in arms.values() for r in st.rows.values()]
    if any(r.train_flops is None and row_flops(r) is not None for r in rows):
        notes.append(Note(NoteKind.DERIVED_FLOPS))
    if worth.axis != "flops":
        notes.append(Note(NoteKind.NO_FLOPS))
    missing = tuple(x for x in AXES if x not in worth.fronts.axes)
    if missing:
        notes.append(Note(NoteKind.AXES_MISSING, axes=missing))
    notes.append(budget_note(rows))
    if any(eq.mismatch for eq in worth.equal.values()):
        notes.append(Note(NoteKind.SCHEDULES_DIFFER))
    if any(xo.source == "curve" and xo.kind != CrossKind.FIT_FAILED for xo in worth.crossovers.values()):
        notes.append(Note(NoteKind.CURVE_CROSSOVERS))
    return notes


def budget_note(rows: list[Row]) -> Note:
    """Whether the arms tie on one budget by design: the same budget, and every row stopped
    by it (`stopped_by`: a row trained under a time limit beside a token budget may stop on
    time, and then its arm had other data than the rest)."""
    kinds = {r.stopped_by or r.budget_kind for r in rows} - {None}
    budgets = {tuple(r.config.get(f"train.max_{k}") or None for k in ("flops", "tokens", "steps", "seconds"))
               for r in rows}
    if len(kinds) == 1 and len(budgets) == 1:
        return Note(NoteKind.SAME_BUDGET, budget=kinds.pop())
    stops: dict[str, list[str]] = {}
    for r in rows:
        stops.setdefault(r.stopped_by or r.budget_kind or "?", []).append(r.arm)
    if len(stops) > 1:
        return Note(NoteKind.MIXED_STOPS, stops={kind: tuple(sorted(set(arms))) for kind, arms in sorted(stops.items())})
    return Note(NoteKind.DIFFERENT_BUDGETS)
