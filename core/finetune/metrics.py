"""Scores with their sampling noise: every downstream number carries n and a 95% interval.

Accuracy: Wilson's score interval (sound near 0 and 1, unlike the normal approximation).
Pearson: Fisher's z, se = 1/sqrt(n-3). Spearman: Fisher's z with Fieller et al.'s
se = sqrt(1.06/(n-3)), the usual correction for rank correlations.

A correlation with constant predictions (or constant gold scores) does not exist: 0/0,
not 0. Such a Score is undefined: its value and interval are NaN and `note` says why
("undefined: the predictions are constant"). It is never reported as 0 (a model that
learned nothing would then look like one at chance, and means over seeds would be pulled
toward it); `mean_and_se` averages the defined seeds, and `undefined` counts the others.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core import stats

Z95 = stats.Z95


CONSTANT_PREDICTIONS = "undefined: the predictions are constant"
CONSTANT_GOLD = "undefined: the gold scores are constant"


@dataclass(frozen=True)
class Score:
    metric: str          # accuracy | pearson | spearman | f1
    value: float         # NaN when undefined (`note` says why)
    n: int
    low: float           # 95% interval
    high: float
    note: str = ""       # why the value is undefined ("" when it is defined)

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    def to_dict(self) -> dict:
        """JSON-safe: an undefined value and interval are None (JSON has no NaN)."""
        return {k: json_number(v) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        if not self.defined:
            return f"{self.metric} {self.note or 'undefined'} (n={self.n})"
        return f"{self.metric} {self.value:.4f} (n={self.n}, 95% CI {self.low:.4f}-{self.high:.4f})"


def undefined(metric: str, n: int, note: str) -> Score:
    return Score(metric, math.nan, n, math.nan, math.nan, note)


def json_number(value: float | None) -> float | None:
    """A score as JSON holds it: None for NaN (undefined) or missing."""
    return None if value is None or math.isnan(value) else value


def wilson(correct: int, n: int) -> tuple[float, float]:
    """core.stats' Wilson interval; (nan, nan) for an empty test set."""
    return (float("nan"), float("nan")) if n == 0 else stats.wilson(correct, n)


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> Score:
    n = len(gold)
    correct = int(np.sum(np.asarray(pred) == np.asarray(gold)))
    return Score("accuracy", correct / n if n else float("nan"), n, *wilson(correct, n))


def chance_level(labels: Sequence[float], regression: bool) -> float:
    """What a model that learned nothing scores on these labels: the majority class's share
    (always predicting it) for accuracy, 0 for a correlation. A score whose interval
    reaches it says nothing about the encoder."""
    if regression or not len(labels):
        return 0.0
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (what Spearman's rho needs)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """NaN when either side is constant: the correlation does not exist."""
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom else math.nan


def fisher_interval(r: float, n: int, var_factor: float = 1.0) -> tuple[float, float]:
    if n <= 3:
        return (-1.0, 1.0)
    z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
    half = Z95 * math.sqrt(var_factor / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def _constant(x: np.ndarray) -> bool:
    return len(x) == 0 or bool(np.all(x == x[0]))


def correlations(pred: Sequence[float], gold: Sequence[float]) -> dict[str, Score]:
    """Pearson and Spearman with their intervals; both undefined (NaN, with the reason)
    when the predictions or the gold scores are constant."""
    a, b = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    n = len(a)
    if _constant(a) or _constant(b):
        note = CONSTANT_PREDICTIONS if _constant(a) else CONSTANT_GOLD
        return {m: undefined(m, n, note) for m in ("pearson", "spearman")}
    r = _pearson(a, b)
    rho = _pearson(_ranks(a), _ranks(b))
    return {"pearson": Score("pearson", r, n, *fisher_interval(r, n)),
            "spearman": Score("spearman", rho, n, *fisher_interval(rho, n, 1.06))}


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error over the fine-tuning seeds whose score is defined (core.stats;
    se 0 for one seed); NaN for both when no seed's is."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan, math.nan
    mean, se = stats.mean_se(kept)
    return mean, se or 0.0
