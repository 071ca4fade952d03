"""Which arms are worth their cost: Pareto fronts of final held-out MLM loss against cost.

Each arm is a point: its final eval MLM loss (mean over seeds) and its costs (mean over
seeds) on the axes of `ablations.analysis.costs` — training FLOPs, wall seconds, peak memory,
unique parameters. Lower is better on all of them.

Dominance is noise-aware. A dominates B over a set of cost axes when
  1. A costs no more than B on every axis (costs within COST_RTOL of each other are
     equal: measured seconds and FLOPs jitter, and an arm is not cheaper by a rounding), and
  2. either A's loss is lower than B's beyond noise, or the two losses tie (the
     difference is within noise) and A is strictly cheaper (beyond COST_RTOL) on at
     least one of the axes.
"Beyond noise" is the verdicts' rule (`ablations.analysis.verdicts.difference`): the paired
per-seed difference must clear both the seed noise (Student's t margin) and the eval-set
noise (paired per-example standard error). A tie on loss with equal costs is no
dominance either way. Where the loss difference has no noise estimate at all (one seed
and no per-example losses), or the arms share no seed, no dominance is claimed.

The front is the set of arms no other arm dominates: per axis (a 2-D front) and over all
axes at once (an arm is off it only when another arm is at least as cheap on every
axis and better, as above).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ablations.analysis.costs import AXES, row_cost
from ablations.analysis.verdicts import ArmStats, difference
from ablations.rows import Metric
from core.stats import mean_se

COST_RTOL = 0.02  # costs within 2% of each other count as equal


@dataclass(frozen=True)
class ArmPoint:
    name: str
    loss: float                    # final eval MLM loss, mean over seeds
    loss_se: float | None          # its standard error over seeds (the eval-set SE with one seed)
    costs: dict[str, float]        # axis -> mean over seeds; an axis with no figure is absent


@dataclass
class Fronts:
    points: dict[str, ArmPoint]
    per_axis: dict[str, list[str]] = field(default_factory=dict)   # axis -> arms on its 2-D front
    all_axes: list[str] = field(default_factory=list)              # arms on the front over `axes`
    axes: tuple[str, ...] = ()                                     # the axes every arm has a figure for


def arm_point(stats: ArmStats) -> ArmPoint | None:
    ms = stats.mean_se(Metric.MLM_LOSS)
    if ms is None:
        return None
    se = ms[1]
    if se is None and len(stats.rows) == 1:
        se = stats.first.eval_mlm_loss_se
    costs = {}
    for axis in AXES:
        vals = [c for c in (row_cost(r, axis) for r in stats.rows.values()) if c is not None]
        if len(vals) == len(stats.rows):  # a mean over some seeds only would mislead
            costs[axis] = mean_se(vals)[0]
    return ArmPoint(stats.name, ms[0], se, costs)


def compare_cost(a: float, b: float, rtol: float = COST_RTOL) -> int:
    """-1 when a is cheaper than b beyond rtol, 1 when dearer, 0 when equal within rtol."""
    if abs(a - b) <= rtol * max(abs(a), abs(b)):
        return 0
    return -1 if a < b else 1


def compare_loss(a: ArmStats, b: ArmStats) -> int | None:
    """-1: a's loss lower beyond noise; 1: higher beyond noise; 0: within noise; None: unknown."""
    d = difference(a, b, Metric.MLM_LOSS)
    if d is None:
        return None
    real, noise = d.verdict
    if noise != noise:  # nan: neither seed nor eval noise known
        return None
    return 0 if not real else (-1 if d.diff < 0 else 1)


def dominates(a: ArmPoint, b: ArmPoint, loss_order: int | None, axes: tuple[str, ...],
              rtol: float = COST_RTOL) -> bool:
    """Does a dominate b on `axes`, given loss_order = compare_loss(a, b)? (module docstring)"""
    if loss_order is None or loss_order > 0 or any(x not in a.costs or x not in b.costs for x in axes):
        return False
    order = [compare_cost(a.costs[x], b.costs[x], rtol) for x in axes]
    if any(o > 0 for o in order):
        return False
    return loss_order < 0 or any(o < 0 for o in order)


def front(points: dict[str, ArmPoint], orders: dict[tuple[str, str], int | None], axes: tuple[str, ...],
          rtol: float = COST_RTOL) -> list[str]:
    """The arms (in the given order) that have a figure on every axis and that no such arm dominates."""
    have = [p for p in points.values() if all(x in p.costs for x in axes)]
    return [b.name for b in have
            if not any(a.name != b.name and dominates(a, b, orders[(a.name, b.name)], axes, rtol) for a in have)]


def pareto_fronts(arms: dict[str, ArmStats], rtol: float = COST_RTOL) -> Fronts:
    """Per-axis fronts and the front over every axis all arms have a figure for."""
    points = {n: p for n, p in ((n, arm_point(st)) for n, st in arms.items() if st.rows) if p is not None}
    orders = {(a, b): compare_loss(arms[a], arms[b]) for a in points for b in points if a != b}
    out = Fronts(points)
    for axis in AXES:
        if any(axis in p.costs for p in points.values()):
            out.per_axis[axis] = front(points, orders, (axis,), rtol)
    out.axes = tuple(x for x in AXES if points and all(x in p.costs for p in points.values()))
    out.all_axes = front(points, orders, out.axes, rtol) if out.axes else []
    return out
