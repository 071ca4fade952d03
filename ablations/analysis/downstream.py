"""Downstream scores read from rows: whether a score is at chance, and whether a component
that saves memory or parameters costs downstream quality beyond noise.

Each row holds one `ablations.rows.TaskScore` per fine-tuned task: the mean over
fine-tuning seeds of the primary metric (accuracy, or Spearman for regression), its
standard error over seeds, the test examples n, the 95% interval of the first seed's test
score, every seed's score, the chance level (what a model that learned nothing scores on
the test split: the majority class's share, or 0 for a correlation; a score whose interval
reaches it is "at chance"), and the seeds whose score was undefined (a correlation of
constant predictions; left out of the mean) with why.

An undefined score is None (NaN in rows written before): it is never 0, never at chance
and never compared. The results are numbers and enums; `ablations.report.downstream`
words them.

Span QA's exact match and F1 (korquad) are scored on the same test questions for every arm
and keep each question's score: two arms are then compared question by question (a paired
difference: the test-set noise is that of the per-question differences, far below that of
either score alone, since a question hard for one arm is hard for the other), beside the
seed noise. Other tasks, or rows without per-question scores, combine the two scores' noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from ablations.rows import Metric, Row, TaskScore
from core.stats import Z95


def tasks_in(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r.downstream))
    return list(seen)


def _ci(s: TaskScore) -> tuple[float, float] | None:
    low, high = s.ci
    return None if low is None or high is None else (low, high)


@dataclass(frozen=True)
class UndefinedSeeds:
    """Fine-tuning seeds whose score was undefined: how many of how many, and why."""
    count: int
    seeds: int
    why: str


def undefined_seeds(row: Row, task: str) -> UndefinedSeeds | None:
    """None when every seed's score is defined (or the row has no score for the task)."""
    s = row.downstream.get(task)
    if s is None or (not s.undefined and not (s.scored and s.score is None)):
        return None
    seeds = len(s.seed_values) or s.undefined or 1
    return UndefinedSeeds(s.undefined or seeds, seeds, s.why or "undefined")


def _total_se(s: TaskScore) -> float | None:
    """Seed noise and test-set sampling noise together (the interval's half-width / 1.96)."""
    ci = _ci(s)
    if ci is None or s.se is None:
        return None
    return math.sqrt(s.se ** 2 + ((ci[1] - ci[0]) / (2 * Z95)) ** 2)


def score_at_chance(row: Row, task: str) -> bool:
    """The first seed's 95% interval reaches what a model that learned nothing scores (the
    majority class's share, or no correlation): the score says nothing about the encoder.
    An undefined score is not at chance: it is undefined."""
    s = row.downstream.get(task)
    ci = _ci(s) if s is not None else None
    return s is not None and s.chance is not None and ci is not None and ci[0] <= s.chance


class Verdict(StrEnum):
    WITHIN_NOISE = "within noise"
    AT_CHANCE = "inconclusive (both at chance)"
    BETTER = "better"
    WORSE = "costs downstream quality"


@dataclass(frozen=True)
class DownstreamDifference:
    """A row's score on a task against its comparison arm's: the difference, twice the combined
    seed and test-set noise, and the verdict; `paired`: the test-set noise is that of the
    per-question differences (the same questions, scored for both arms)."""
    task: str
    metric: str | None
    diff: float
    noise: float
    verdict: Verdict
    paired: bool = False
    label: str = ""                  # the task (and metric, for a task of several scores) in words


def paired_se(s: TaskScore, t: TaskScore) -> float | None:
    """The standard error of the mean per-question difference between two scores of the same
    test questions (their first seeds'); None when either lacks them or the questions differ."""
    a, b = s.per_example, t.per_example
    if a is None or b is None or a[0] != b[0] or len(a[1]) != len(b[1]) or len(a[1]) < 2:
        return None
    d = [x - y for x, y in zip(a[1], b[1])]
    mean = sum(d) / len(d)
    return math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))


def downstream_difference(row: Row, ref: Row, task: str) -> DownstreamDifference | None:
    """None where either score is missing or undefined."""
    s, t = row.downstream.get(task), ref.downstream.get(task)
    if s is None or t is None:
        return None
    a, b, sa, sb = s.score, t.score, _total_se(s), _total_se(t)
    if a is None or b is None or sa is None or sb is None:
        return None
    d, noise, pse = a - b, 2 * math.sqrt(sa ** 2 + sb ** 2), paired_se(s, t)
    if pse is not None:   # seed noise of both, and the paired test-set noise
        noise = 2 * math.sqrt((s.se or 0.0) ** 2 + (t.se or 0.0) ** 2 + pse ** 2)
    if abs(d) <= noise:
        verdict = Verdict.WITHIN_NOISE
    elif score_at_chance(row, task) and score_at_chance(ref, task):
        verdict = Verdict.AT_CHANCE
    else:
        verdict = Verdict.BETTER if d > 0 else Verdict.WORSE
    return DownstreamDifference(task, s.metric, d, noise, verdict, pse is not None, s.label)


SAVINGS = (Metric.PARAMS_UNIQUE, Metric.PEAK_MEM)


def savings(row: Row, ref: Row) -> list[tuple[Metric, float]]:
    """What the row saves against its comparison arm: (metric, ratio) below 0.95."""
    out = []
    for metric in SAVINGS:
        a, b = row.value(metric), ref.value(metric)
        if a and b and a / b < 0.95:
            out.append((metric, a / b))
    return out
