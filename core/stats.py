"""The statistics every verdict rests on: means over seeds with their standard errors,
paired differences, binomial intervals and ranges of interleaved ratios.

A comparison is only as good as its noise estimate. Two noises matter in an ablation:
- seed noise: training the same arm with another seed gives another loss. Measured by
  the spread, over seeds, of the per-seed difference between two arms (paired: seed k of
  both arms shares initialisation, data order and masks, so much of the noise cancels);
- eval noise: the held-out set is a sample. When two arms are scored on the same examples
  with the same masks, the noise of their difference is the standard error of the
  per-example difference (paired again), far smaller than either loss's own error.
A difference is called real only when it exceeds both (`judge`).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Z95 = 1.959963984540054


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean; the error is None for a single value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_se needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of a_k - b_k over seeds k (the seeds must line up)."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same seeds on both sides ({len(a)} vs {len(b)})")
    return mean_se([x - y for x, y in zip(a, b)])


def paired_eval_se(sums_a: Sequence[float], sums_b: Sequence[float], counts: Sequence[int]) -> float:
    """Standard error of the difference of two mean token losses scored on the same examples
    and masks: per-example loss sums a_i, b_i over n_i predicted tokens. The difference is
    sum(a_i - b_i) / sum(n_i); examples are the independent units (tokens of one example
    are not), so the error comes from the spread of the per-example differences."""
    if not (len(sums_a) == len(sums_b) == len(counts)) or len(counts) < 2:
        raise ValueError("paired eval noise needs the same two or more examples on both sides")
    d = [x - y for x, y in zip(sums_a, sums_b)]
    total = sum(counts)
    return math.sqrt(len(d)) * statistics.stdev(d) / total


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default): sound near 0 and 1
    and at small n, where the normal approximation is not."""
    if n <= 0:
        raise ValueError("a binomial interval needs n >= 1")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# two-sided 95% quantiles of Student's t for 1..10 degrees of freedom: a standard error
# from a handful of seeds is itself uncertain, so its margin must be wider than 2 SE
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t975(dof: int) -> float:
    return T975[dof - 1] if 1 <= dof <= len(T975) else Z95


def judge(diff: float, seed_se: float | None, eval_se: float | None, seeds: int = 0,
          z: float = Z95) -> tuple[bool, float]:
    """Is `diff` beyond noise? Both noises must be cleared: |diff| > t * seed_se (t for
    seeds - 1 degrees of freedom) and |diff| > z * eval_se. Returns (real, noise), noise
    being the larger margin (what to print beside "within noise"). With neither error
    known nothing can be claimed."""
    margins = [m for m in (t975(seeds - 1) * seed_se if seed_se is not None and seeds > 1 else None,
                           z * eval_se if eval_se is not None else None) if m is not None]
    if not margins:
        return False, float("nan")
    noise = max(margins)
    return abs(diff) > noise, noise


def speed_ratio(arm_times: Sequence[float], ref_times: Sequence[float]) -> dict[str, float]:
    """An arm's speed relative to its reference from interleaved timings of the same batch:
    per round, ref_time / arm_time (> 1: the arm is faster). Median, min and max over the
    rounds; a verdict may claim a direction only when [min, max] lies on one side of 1."""
    if len(arm_times) != len(ref_times) or not arm_times:
        raise ValueError("interleaved ratios need the same rounds on both sides")
    ratios = [r / a for a, r in zip(arm_times, ref_times)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}
