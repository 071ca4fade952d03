"""Arm against reference at equal compute: the loss difference when both had spent the same C.

Final losses compare arms at equal tokens (or steps); an arm that costs more per token
has then also spent more. Here each (arm, seed)'s curve points (held-out MLM loss on the
first held-out examples, see `ablations.analysis.costs.curve`) are interpolated at one budget C on
an axis — training FLOPs by default, or seconds, or tokens:
- interpolation is linear in log C between the two curve points around C (loss curves
  are close to straight on a log axis); C outside a curve gives no value, never an
  extrapolation;
- C is the largest budget every arm reached: the minimum over arms and seeds of each
  curve's last point (`common_budget`);
- the difference arm − reference is taken per seed and averaged (paired over seeds,
  seed noise = standard error of the per-seed differences);
- eval-set noise: both arms were scored on the same examples with the same masks, so
  each example's loss sum is interpolated at C the same way and the per-seed noise is the
  paired per-example standard error (`core.stats.paired_eval_se`), combined over seeds as
  in `ablations.analysis.verdicts.difference`.
The verdict is the verdicts' rule: a difference is real only when it clears both noises
(`Difference.verdict`; `ablations.report.verdicts.describe` words it); and it is not judged
at all where the two arms are at different points of their learning-rate schedules at C
(`schedule_mismatch`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ablations.analysis.costs import curve, example_sums
from ablations.analysis.verdicts import ArmStats, Difference
from ablations.rows import Row
from core.stats import mean_se, paired_eval_se


@dataclass(frozen=True)
class AtBudget:
    """One (arm, seed)'s curve interpolated at C."""
    loss: float
    sums: np.ndarray | None      # per-example loss sums at C (None without per-example losses)
    counts: tuple[int, ...] | None


def bracket(xs: list[float], c: float) -> tuple[int, float] | None:
    """(i, w): c lies between xs[i] and xs[i+1] at fraction w of the way in log x; None outside."""
    if not xs or c < xs[0] or c > xs[-1] or c <= 0:
        return None
    if len(xs) == 1 or c == xs[-1]:
        return len(xs) - 1, 0.0
    i = int(np.searchsorted(xs, c, side="right")) - 1
    return i, (math.log(c) - math.log(xs[i])) / (math.log(xs[i + 1]) - math.log(xs[i]))


def at_budget(row: Row, axis: str, c: float) -> AtBudget | None:
    points = curve(row, axis)
    got = bracket([x for x, _ in points], c)
    if got is None:
        return None
    i, w = got
    ends = [points[i][1]] + ([points[i + 1][1]] if w > 0 else [])
    loss = sum(f * e.eval_mlm_loss for f, e in zip((1 - w, w), ends))
    per_example = [example_sums(e, row) for e in ends]
    if any(p is None for p in per_example) or len({tuple(p[1]) for p in per_example}) != 1:
        return AtBudget(loss, None, None)
    sums = sum(f * np.asarray(p[0], dtype=float) for f, p in zip((1 - w, w), per_example))
    return AtBudget(loss, sums, tuple(per_example[0][1]))


def _shared_examples(a: AtBudget, b: AtBudget) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None:
    """Both arms' per-example sums on the examples they share. Curve points cover the first
    held-out examples, so two curves of different sizes (a run resumed under another curve
    size) share the shorter one's examples; their token counts must agree there."""
    if a.sums is None or b.sums is None:
        return None
    n = min(len(a.counts), len(b.counts))
    if n < 2 or a.counts[:n] != b.counts[:n]:
        return None
    return a.sums[:n], b.sums[:n], a.counts[:n]


def common_budget(arms: dict[str, ArmStats], axis: str) -> float | None:
    """The largest C every (arm, seed) with a curve reached."""
    ends = [pts[-1][0] for st in arms.values() for r in st.rows.values() if (pts := curve(r, axis))]
    return min(ends) if ends else None


def equal_compute_difference(arm: ArmStats, ref: ArmStats, axis: str, c: float) -> Difference | None:
    """arm − reference of the interpolated eval MLM loss at C, paired over the shared seeds."""
    pairs = []
    for s in sorted(set(arm.rows) & set(ref.rows)):
        a, b = at_budget(arm.rows[s], axis, c), at_budget(ref.rows[s], axis, c)
        if a is not None and b is not None:
            pairs.append((a, b))
    if not pairs:
        return None
    diff, seed_se = mean_se([a.loss - b.loss for a, b in pairs])
    shared = [_shared_examples(a, b) for a, b in pairs]
    paired = all(s is not None for s in shared)
    eval_se = None
    if paired:
        per_seed = [paired_eval_se(*s) for s in shared]
        eval_se = math.sqrt(sum(e * e for e in per_seed)) / len(pairs)
    return Difference(f"eval_mlm_loss@{axis}", diff, seed_se, eval_se, len(pairs), paired)


SCHEDULE_RTOL = 0.02  # two curves that end within 2% of each other had the same budget


def _schedule_fraction(row: Row, axis: str, c: float) -> tuple[float, bool]:
    """(fraction of the run's budget spent at C, whether C lies in a constant-rate phase:
    a wsd run's stable phase, before its cooldown)."""
    points = curve(row, axis)
    end = points[-1][0] if points else c
    frac = c / end if end else 1.0
    cfg = row.config
    stable = cfg.get("train.schedule") == "wsd" and frac <= 1 - float(cfg.get("train.decay", 0.2)) + 1e-9
    return frac, stable


@dataclass(frozen=True)
class Mismatch:
    """Two curves at C at different points of their learning-rate schedules: the fraction of
    its budget each had spent (their budgets differ on the axis)."""
    arm: str
    ref: str
    arm_fraction: float
    ref_fraction: float


def schedule_mismatch(arm: ArmStats, ref: ArmStats, axis: str, c: float) -> Mismatch | None:
    """Whether the two curves at C are at different points of their learning-rate schedules
    (None when they are not). A curve point of a decaying schedule is not the loss of a run
    with that budget: at C an arm whose budget ends there has finished its decay, one with a
    larger budget is still part-way through it, and its loss is higher for that reason
    alone. The comparison is fair where both spent the same fraction of equal budgets
    (e.g. `--flops N`), or where both are in a wsd stable phase (constant rate)."""
    for s in sorted(set(arm.rows) & set(ref.rows)):
        (fa, sa), (fr, sr) = (_schedule_fraction(r.rows[s], axis, c) for r in (arm, ref))
        # a budget stops an arm within one optimizer step of it: one step of each is no mismatch
        slack = SCHEDULE_RTOL + sum(1 / r.rows[s].steps for r in (arm, ref) if r.rows[s].steps)
        if not (sa and sr) and abs(fa - fr) > slack:
            return Mismatch(arm.name, ref.name, fa, fr)
    return None


@dataclass(frozen=True)
class EqualCompute:
    arm: str
    ref: str
    axis: str
    budget: float
    difference: Difference | None
    mismatch: Mismatch | None = None   # the schedules make the comparison unfair (not judged)


def equal_compute_all(arms: dict[str, ArmStats], axis: str = "flops") -> dict[str, EqualCompute]:
    """Each arm with a comparison arm (its rows' `compare_to`) against it at the common budget."""
    c = common_budget(arms, axis)
    out = {}
    for name, st in arms.items():
        ref = arms.get(st.first.compare_to or "")
        if c is not None and ref is not None and st.rows and ref.rows:
            out[name] = EqualCompute(name, ref.name, axis, c, equal_compute_difference(st, ref, axis, c),
                                     schedule_mismatch(st, ref, axis, c))
    return out
