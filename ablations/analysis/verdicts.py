"""From rows to claims: per-arm means over seeds, paired differences against the
comparison arm, and verdicts that never call noise a difference.

- Each arm's figure is the mean over its seeds ± the standard error (none with one seed).
- An arm-minus-reference difference is taken per seed, then averaged (paired).
- Its noise has two parts, and a difference is real only when it clears both:
  seed noise (the spread of the per-seed differences) and eval noise (the paired
  per-example standard error when both arms were scored on the same examples and masks,
  the unpaired one otherwise). See `core.stats`.
- Speed comes from the interleaved timing (`speed.json`): "faster" only when the ratio's
  whole min-max range over the rounds lies above 1.

Claims are numbers and enums (`Comparison`, `Judgement`); `ablations.report.verdicts`
words them.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ablations.rows import Metric, Row
from ablations.rundir import results
from core.stats import Z95, judge, mean_se, paired_eval_se, speed_ratio, wilson

LOSSES = (Metric.MLM_LOSS, Metric.SENTENCE_LOSS)
ACCURACIES = (Metric.MLM_ACC, Metric.NSP_ACC, Metric.SOP_ACC)
DETERMINISTIC = (Metric.PARAMS_UNIQUE, Metric.PARAMS_TOTAL, Metric.SAVED, Metric.SAVED_LONG, Metric.PEAK_MEM,
                 Metric.OPTIMIZER_STATE)
CHANCE = "chance"   # an expectation's `versus`: a sentence head against its chance level


@dataclass
class ArmStats:
    name: str
    rows: dict[int, Row] = field(default_factory=dict)   # seed -> the latest ok row
    failed: list[Row] = field(default_factory=list)      # latest non-ok rows, one per seed

    @property
    def first(self) -> Row:
        """The first seed's ok row, else the first failed one (an empty row for an empty arm)."""
        return self.rows[min(self.rows)] if self.rows else (self.failed[0] if self.failed else Row(arm=self.name))

    def values(self, metric: Metric | str) -> dict[int, float]:
        return {s: v for s, r in self.rows.items() if (v := r.value(metric)) is not None}

    def mean_se(self, metric: Metric | str) -> tuple[float, float | None] | None:
        vals = list(self.values(metric).values())
        return mean_se(vals) if vals else None

    def unigram_gap(self) -> tuple[float, float] | None:
        """(mean over seeds of held-out MLM loss minus the masked tokens' unigram entropy, its
        95% noise: the paired per-token standard errors combined over seeds); None for rows
        written before the unigram reference was recorded."""
        got = [(r.eval_mlm_unigram_gap, r.eval_mlm_unigram_gap_se) for r in self.rows.values()
               if r.eval_mlm_unigram_gap is not None]
        if not got or any(se is None for _, se in got):
            return None
        return (sum(g for g, _ in got) / len(got), Z95 * math.sqrt(sum(se * se for _, se in got)) / len(got))

    def left_unigram_stage(self) -> bool | None:
        """Its held-out MLM loss is below the unigram entropy by more than its noise: it has
        learned something from context. None where the rows cannot say."""
        got = self.unigram_gap()
        return None if got is None else got[0] + got[1] < 0

    def at_unigram_stage(self) -> bool:
        """Not yet learning from context: held-out MLM loss not below the masked tokens' unigram
        entropy beyond noise; for older rows without it, MLM accuracy (pooled over seeds) not
        clearly above the most-frequent-token rate."""
        left = self.left_unigram_stage()
        if left is not None:
            return not left
        rows = [r for r in self.rows.values() if r.eval_mlm_acc is not None and r.eval_mlm_majority_acc is not None
                and r.eval_mlm_tokens]
        if not rows:
            return False
        n = sum(r.eval_mlm_tokens for r in rows)
        majority = sum(r.eval_mlm_majority_acc * r.eval_mlm_tokens for r in rows) / n
        low, _ = wilson(round(sum(r.eval_mlm_acc * r.eval_mlm_tokens for r in rows)), n)
        return low <= majority

    def interval(self, task: str) -> tuple[float, float, int] | None:
        """Wilson 95% interval of an accuracy (task: mlm, nsp or sop), pooled over seeds: (low, high, n)."""
        hits = n = 0
        for r in self.rows.values():
            a = r.accuracy(task)
            if a.acc is not None:
                k = a.n or 0
                hits, n = hits + round(a.acc * k), n + k
        return (*wilson(hits, n), n) if n else None


def collect(rows: list[Row]) -> dict[str, ArmStats]:
    """Every (arm, seed)'s result (`ablations.rundir.results`), grouped by arm in first-seen order."""
    arms: dict[str, ArmStats] = {}
    for (name, seed), r in results(rows).items():
        stats = arms.setdefault(name, ArmStats(name))
        if r.ok:
            stats.rows[seed] = r
        else:
            stats.failed.append(r)
    return arms


# -- differences -------------------------------------------------------------------------------
@dataclass
class Difference:
    metric: str
    diff: float                 # mean over shared seeds of (arm - reference)
    seed_se: float | None       # None with a single shared seed
    eval_se: float | None
    seeds: int
    paired_eval: bool

    @property
    def verdict(self) -> tuple[bool, float]:
        return judge(self.diff, self.seed_se, self.eval_se, self.seeds)


def _eval_se(metric: Metric, a: Row, b: Row) -> tuple[float | None, bool]:
    """The eval-set noise of one seed's difference, paired where the examples are shared."""
    if metric == Metric.MLM_LOSS:
        ta, tb = a.eval_mlm_example_tokens, b.eval_mlm_example_tokens
        if ta and ta == tb and len(ta) > 1:
            return paired_eval_se(a.eval_mlm_example_loss, b.eval_mlm_example_loss, ta), True
        se = [a.eval_mlm_loss_se, b.eval_mlm_loss_se]
        return (math.hypot(*se), False) if None not in se else (None, False)
    if metric.task is None:  # a loss without per-example figures or a count
        return None, False
    ha, hb = a.accuracy(metric.task), b.accuracy(metric.task)
    if ha.correct and hb.correct and len(ha.correct) == len(hb.correct) > 1:
        d = [int(x) - int(y) for x, y in zip(ha.correct, hb.correct)]
        return statistics.stdev(d) / math.sqrt(len(d)), True
    n, p = [ha.n, hb.n], [a.value(metric), b.value(metric)]
    if None in n or None in p or 0 in n:
        return None, False
    return math.sqrt(sum(q * (1 - q) / k for q, k in zip(p, n))), False


def difference(arm: ArmStats, ref: ArmStats, metric: Metric | str) -> Difference | None:
    metric = Metric(metric)
    seeds = sorted(set(arm.values(metric)) & set(ref.values(metric)))
    if not seeds:
        return None
    diffs = [arm.rows[s].value(metric) - ref.rows[s].value(metric) for s in seeds]
    diff, seed_se = mean_se(diffs)
    evals = [_eval_se(metric, arm.rows[s], ref.rows[s]) for s in seeds]
    eval_se = None
    if all(e is not None for e, _ in evals):
        eval_se = math.sqrt(sum(e * e for e, _ in evals)) / len(seeds)
    return Difference(metric.value, diff, seed_se, eval_se, len(seeds), all(p for _, p in evals))


def speed_of(speed: dict, arm: str, ref: str) -> dict | None:
    """The interleaved ratio arm/ref (tokens/s) from speed.json, or None when either was not timed."""
    a, b = speed.get(arm), speed.get(ref)
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok" or a.get("group") != b.get("group"):
        return None
    return speed_ratio(a["step_s"], b["step_s"])


def ratio(arm: ArmStats, ref: ArmStats, metric: Metric | str) -> float | None:
    a, b = arm.mean_se(metric), ref.mean_se(metric)
    return a[0] / b[0] if a and b and b[0] else None


@dataclass(frozen=True)
class Comparison:
    """An arm against its comparison arm: ratios arm / reference (None where either lacks
    the figure), the interleaved speed ratio, and the paired differences that were measured."""
    params: float | None
    speed: dict | None                     # `speed_of`
    peak_mem: float | None
    saved: float | None
    saved_long: float | None
    long_seq_len: int | None               # the length of `saved_long`
    differences: dict[Metric, Difference]  # MLM loss, NSP and SOP accuracy, in that order


def compare(arm: ArmStats, ref: ArmStats, speed: dict) -> Comparison:
    diffs = {m: d for m in (Metric.MLM_LOSS, Metric.NSP_ACC, Metric.SOP_ACC) if (d := difference(arm, ref, m))}
    return Comparison(ratio(arm, ref, Metric.PARAMS_UNIQUE), speed_of(speed, arm.name, ref.name),
                      ratio(arm, ref, Metric.PEAK_MEM), ratio(arm, ref, Metric.SAVED),
                      ratio(arm, ref, Metric.SAVED_LONG), arm.first.long_seq_len, diffs)


def head_at_chance(stats: ArmStats, task: str) -> bool:
    """A sentence head (NSP, SOP: two balanced classes) whose accuracy interval contains 50%."""
    iv = stats.interval(task)
    return iv is not None and iv[0] <= 0.5 <= iv[1]


# -- the papers' expected directions -------------------------------------------------------------------
class Outcome(StrEnum):
    REPRODUCED = "reproduced"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    NOT_MEASURED = "not measured"


class Missing(StrEnum):
    """Why an expected direction was not measured."""
    NOT_IN_RUN = "not in this run"      # an arm of the claim has no ok row
    NOT_TIMED = "not timed"             # a speed claim without side-by-side timing
    METRIC = "metric missing"           # the rows lack the metric


@dataclass(frozen=True)
class ChanceTest:
    """A sentence head against chance: its accuracy, Wilson 95% interval pooled over seeds,
    and the chance level it must beat (50%, or the held-out majority share)."""
    acc: float
    low: float
    high: float
    n: int
    chance: float


@dataclass(frozen=True)
class Judgement:
    """One expected direction judged: the outcome, and the evidence (one of the fields)."""
    outcome: Outcome
    metric: Metric
    missing: Missing | None = None
    speed: dict | None = None              # tokens_per_s: the interleaved ratio (`speed_of`)
    ratio: float | None = None             # an exact metric: arm / reference
    long_seq_len: int | None = None        # saved_bytes_long: its length
    difference: Difference | None = None   # a noisy metric: the paired difference
    heads_at_chance: bool = False          # both sentence heads still at chance (inconclusive)
    chance: ChanceTest | None = None       # versus chance


def judge_expectation(e: Mapping[str, Any], arms: dict[str, ArmStats], speed: dict) -> Judgement:
    """One expected direction as spec.json holds it (`AblationSpec.to_json`: claim, arm,
    metric, direction, factor, versus, source) against the run's rows."""
    ref_name, metric = e.get("versus"), Metric(e["metric"])
    arm, ref = arms.get(e["arm"]), arms.get(ref_name or "")
    if ref_name == CHANCE and arm is not None and arm.rows:
        return _above_chance(metric, arm)
    if arm is None or ref is None or not arm.rows or not ref.rows:
        return Judgement(Outcome.NOT_MEASURED, metric, Missing.NOT_IN_RUN)
    want_lower = e["direction"] == "lower"
    factor = e.get("factor")
    if metric == Metric.TOKENS_PER_S:
        r = speed_of(speed, arm.name, ref.name)
        if r is None:
            return Judgement(Outcome.NOT_MEASURED, metric, Missing.NOT_TIMED)
        if r["min"] <= 1 <= r["max"]:
            return Judgement(Outcome.INCONCLUSIVE, metric, speed=r)
        return Judgement(Outcome.REPRODUCED if (r["max"] < 1) == want_lower else Outcome.CONTRADICTED, metric, speed=r)
    if metric in DETERMINISTIC or metric == Metric.WALL_S:
        r = ratio(arm, ref, metric)
        if r is None:
            return Judgement(Outcome.NOT_MEASURED, metric, Missing.METRIC)
        ok = (r < 1) == want_lower and r != 1 and (factor is None or (r <= factor if want_lower else r >= factor))
        return Judgement(Outcome.REPRODUCED if ok else Outcome.CONTRADICTED, metric, ratio=r,
                         long_seq_len=arm.first.long_seq_len)
    return _noisy_expectation(metric, arm, ref, e["direction"])


def _noisy_expectation(metric: Metric, arm: ArmStats, ref: ArmStats, direction: str) -> Judgement:
    d = difference(arm, ref, metric)
    if d is None:
        return Judgement(Outcome.NOT_MEASURED, metric, Missing.METRIC)
    if metric.task in ("nsp", "sop") and head_at_chance(arm, metric.task) and head_at_chance(ref, metric.task):
        return Judgement(Outcome.INCONCLUSIVE, metric, difference=d, heads_at_chance=True)
    real, _ = d.verdict
    if direction == "similar":  # the claim is "no difference": it holds as far as this noise can tell
        outcome = Outcome.CONTRADICTED if real else Outcome.REPRODUCED
    elif direction in ("not-higher", "not-lower"):  # "no worse": only the wrong way beyond noise contradicts
        outcome = Outcome.CONTRADICTED if real and (d.diff > 0) == (direction == "not-higher") else Outcome.REPRODUCED
    elif not real:
        outcome = Outcome.INCONCLUSIVE
    else:
        outcome = Outcome.REPRODUCED if (d.diff < 0) == (direction == "lower") else Outcome.CONTRADICTED
    return Judgement(outcome, metric, difference=d)


def _above_chance(metric: Metric, arm: ArmStats) -> Judgement:
    """A sentence head against chance: its Wilson 95% interval, pooled over seeds, must lie
    wholly above 50% and above the held-out set's majority share where the rows record it
    (a head that always answers the commoner class scores that share)."""
    task = metric.task
    iv, got = arm.interval(task), arm.mean_se(metric)
    if iv is None or got is None:
        return Judgement(Outcome.NOT_MEASURED, metric, Missing.METRIC)
    low, high, n = iv
    majority = [v for r in arm.rows.values() if (v := r.accuracy(task).majority) is not None]
    chance = max(0.5, mean_se(majority)[0]) if majority else 0.5
    test = ChanceTest(got[0], low, high, n, chance)
    if low > chance:
        return Judgement(Outcome.REPRODUCED, metric, chance=test)
    if high < 0.5:
        return Judgement(Outcome.CONTRADICTED, metric, chance=test)
    return Judgement(Outcome.INCONCLUSIVE, metric, chance=test)
