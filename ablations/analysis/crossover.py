"""Where does a cheaper idea stop paying? The compute at which two arms' fitted loss curves cross.

Each arm's held-out MLM loss against compute C is fitted with a saturating power law
    L(C) = E + A * (C / C_scale) ** (-alpha),   E >= 0, A > 0, 0 < alpha < 3,
C_scale being the largest C of the points (a well-conditioned parametrisation), by
`scipy.optimize.curve_fit` on all seeds' points pooled. Points are one final loss per
ladder rung per seed, or without a ladder the curve points (`ablations.analysis.costs.loss_points`).

The crossover is the first C in [C_min, SEARCH x C_max] where the fits are equal
(C_min, C_max: the compute range both arms were measured over). Its 95% interval comes
from a bootstrap over seeds: seeds are resampled with replacement (the same seeds for
both arms, as seeds are paired), both arms refitted and the crossing recomputed,
N_BOOT times with a fixed RNG seed. A resample without a crossing in the window counts
as beyond it. The 2.5-97.5% percentiles are widened for few seeds (`widen`: a bootstrap
of 3 seeds alone covered the true crossing of synthetic curves about 70% of the time,
widened about 90%). Outcomes:
- "crosses" at C* [lo, hi]; labelled "extrapolation" beyond 10x C_max;
- "none": no crossing in the window, in the fit and in at least 97.5% of the resamples;
- "inconclusive": the interval is wider (in log C) than the measured range or open
  above, the fit and the resamples disagree, or more than a fifth of the resamples fail;
- "fit failed": too few points (fewer than 4 distinct C) or no convergence.
The outcome is a `CrossKind` and, where it needs one, a `CrossWhy`, with the numbers;
`ablations.report.worth` words them.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from core.stats import Z95, t975

N_BOOT = 200
SEARCH = 100.0           # look for a crossing up to this many times the largest measured C
EXTRAPOLATION = 10.0     # beyond this many times the largest measured C an answer is an extrapolation
MAX_FAILED = 0.2         # more failed resamples than this fraction: inconclusive

Points = dict[int, list[tuple[float, float]]]  # seed -> [(C, loss)]


@dataclass(frozen=True)
class PowerLaw:
    E: float
    A: float
    alpha: float
    scale: float

    def __call__(self, c):
        return self.E + self.A * (np.asarray(c, dtype=float) / self.scale) ** (-self.alpha)


def fit_power_law(cs, losses) -> PowerLaw | None:
    """Least-squares fit of E + A (C/C_max)^-alpha; None when it cannot be fitted."""
    from scipy.optimize import OptimizeWarning, curve_fit

    c, y = np.asarray(cs, dtype=float), np.asarray(losses, dtype=float)
    if len(np.unique(c)) < 4 or not (np.all(np.isfinite(y)) and np.all(c > 0)):
        return None
    scale = float(c.max())
    f = lambda x, E, A, alpha: E + A * x ** (-alpha)
    p0 = (max(0.5 * y.min(), 0.0), max(y.max() - y.min(), 1e-3), 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (E, A, alpha), _ = curve_fit(f, c / scale, y, p0=p0, bounds=([0, 1e-12, 1e-3], [np.inf, np.inf, 3.0]),
                                         maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return PowerLaw(float(E), float(A), float(alpha), scale) if np.all(np.isfinite((E, A, alpha))) else None


def crossing(a: PowerLaw, b: PowerLaw, lo: float, hi: float) -> float | None:
    """The smallest C in [lo, hi] where a(C) = b(C), or None."""
    from scipy.optimize import brentq

    grid = np.geomspace(lo, hi, 400)
    d = a(grid) - b(grid)
    if d[0] == 0:
        return float(grid[0])
    change = np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) <= 0)[0]
    if not len(change):
        return None
    i = int(change[0])
    g = lambda logc: float(a(math.exp(logc)) - b(math.exp(logc)))
    return math.exp(brentq(g, math.log(grid[i]), math.log(grid[i + 1])))


def _pooled(points: Points, seeds) -> tuple[list[float], list[float]]:
    pts = [p for s in seeds for p in points[s]]
    return [c for c, _ in pts], [y for _, y in pts]


def _fit_pair(arm: Points, ref: Points, seeds) -> tuple[PowerLaw, PowerLaw] | None:
    fa, fr = fit_power_law(*_pooled(arm, seeds)), fit_power_law(*_pooled(ref, seeds))
    return (fa, fr) if fa is not None and fr is not None else None


class CrossKind(StrEnum):
    CROSSES = "crosses"
    NONE = "none"
    INCONCLUSIVE = "inconclusive"
    FIT_FAILED = "fit failed"


class CrossWhy(StrEnum):
    """Why a crossover failed or is inconclusive."""
    NO_SEED = "no seed with points for both arms"
    TOO_FEW = "too few points or no convergence"
    NO_OVERLAP = "the compute ranges do not overlap"
    RESAMPLES_FAILED = "too many resamples failed to fit"
    NO_CROSSING = "the fits do not cross in the window"   # NONE, or INCONCLUSIVE when the resamples disagree
    ONE_SEED = "one seed gives no interval"
    TOO_WIDE = "the interval is wider than the measured range"


@dataclass(frozen=True)
class Crossover:
    kind: CrossKind
    why: CrossWhy | None = None
    at: float | None = None    # the fits' crossing
    lo: float | None = None    # 95% bootstrap interval
    hi: float | None = None
    c_min: float | None = None
    c_max: float | None = None
    source: str = ""           # ladder | curve
    lower: str | None = None   # the arm whose fit is lower just above c_min
    other: str | None = None   # the other arm
    seeds: int = 0             # seeds with points for both arms
    resamples: int = 0         # seed resamples whose fits converged
    crossed: int = 0           # of those, the ones that cross in the window
    failed: int = 0            # seed resamples whose fit failed
    n_boot: int = 0

    @property
    def extrapolation(self) -> bool:
        return self.at is not None and self.c_max is not None and self.at > EXTRAPOLATION * self.c_max

    @property
    def beyond_range(self) -> bool:
        """Beyond the largest measured budget (not as far as an extrapolation, perhaps)."""
        return self.at is not None and self.c_max is not None and self.at > self.c_max


def _measured_range(arm: Points, ref: Points, seeds) -> tuple[float, float]:
    lows, highs = [], []
    for pts in (arm, ref):
        cs = [c for s in seeds for c, _ in pts[s]]
        lows.append(min(cs)), highs.append(max(cs))
    return float(max(lows)), float(min(highs))


def _bootstrap(arm: Points, ref: Points, seeds: list[int], lo: float, hi: float, n: int,
               rng_seed: int) -> tuple[np.ndarray, int]:
    """Crossings of n seed resamples (inf where none in [lo, hi]) and the number of failed fits.
    A resample's fits depend only on which seeds it drew how often, so each is fitted once."""
    rng, roots, failed = np.random.default_rng(rng_seed), [], 0
    memo: dict[tuple[int, ...], float | None] = {}
    for _ in range(n):
        draw = tuple(sorted(rng.choice(seeds, size=len(seeds), replace=True).tolist()))
        if draw not in memo:
            fits = _fit_pair(arm, ref, draw)
            memo[draw] = None if fits is None else (crossing(*fits, lo, hi) or math.inf)
        if memo[draw] is None:
            failed += 1
        else:
            roots.append(memo[draw])
    return np.asarray(roots, dtype=float), failed


def find_crossover(arm: Points, ref: Points, names: tuple[str, str] = ("arm", "reference"),
                   source: str = "curve", n_boot: int = N_BOOT, rng_seed: int = 0) -> Crossover:
    """Where arm's and reference's fitted loss curves cross, with a bootstrap interval over seeds."""
    seeds = sorted(s for s in set(arm) & set(ref) if arm[s] and ref[s])
    if not seeds:
        return Crossover(CrossKind.FIT_FAILED, CrossWhy.NO_SEED, source=source)
    c_min, c_max = _measured_range(arm, ref, seeds)
    fits = _fit_pair(arm, ref, seeds)
    if fits is None or c_min >= c_max:
        why = CrossWhy.TOO_FEW if fits is None else CrossWhy.NO_OVERLAP
        return Crossover(CrossKind.FIT_FAILED, why, c_min=c_min, c_max=c_max, source=source, seeds=len(seeds))
    at = crossing(*fits, c_min, SEARCH * c_max)
    one_seed = len(seeds) < 2
    roots, failed = (np.asarray([]), 0) if one_seed else \
        _bootstrap(arm, ref, seeds, c_min, SEARCH * c_max, n_boot, rng_seed)
    base = dict(at=at, c_min=c_min, c_max=c_max, source=source)
    if len(roots):
        lo, hi = float(np.quantile(roots, 0.025, method="lower")), float(np.quantile(roots, 0.975, method="higher"))
        base.update(lo=lo, hi=hi) if at is None else base.update(zip(("lo", "hi"), widen(at, lo, hi, len(seeds))))
    elif not one_seed:
        failed = n_boot
    lower, other = _lower_first(fits, names, c_min)
    kind, why = _judge_crossing(base, roots, failed, n_boot, one_seed)
    return Crossover(kind, why, **base, lower=lower, other=other, seeds=len(seeds), resamples=len(roots),
                     crossed=int(np.isfinite(roots).sum()), failed=failed, n_boot=n_boot)


def widen(at: float, lo: float, hi: float, n_seeds: int) -> tuple[float, float]:
    """The percentile interval of a seed bootstrap, widened in log C about `at` by
    t975(n-1) / z * sqrt(n / (n-1)): with a handful of seeds the bootstrap spread
    underestimates the standard error (by sqrt((n-1)/n)) and the normal quantile is too
    small (Student's t, as the verdicts use). Always contains `at`."""
    k = t975(n_seeds - 1) / Z95 * math.sqrt(n_seeds / (n_seeds - 1))
    return at * min(lo / at, 1.0) ** k, at * max(hi / at, 1.0) ** k


def _lower_first(fits: tuple[PowerLaw, PowerLaw], names: tuple[str, str], c: float) -> tuple[str, str]:
    """(the arm lower just above c, the other)."""
    return names if fits[0](c * 1.0001) < fits[1](c * 1.0001) else names[::-1]


def _judge_crossing(b: dict, roots: np.ndarray, failed: int, n_boot: int,
                    one_seed: bool) -> tuple[CrossKind, CrossWhy | None]:
    at, lo, hi, c_min, c_max = b["at"], b.get("lo"), b.get("hi"), b["c_min"], b["c_max"]
    if failed > MAX_FAILED * n_boot:
        return CrossKind.INCONCLUSIVE, CrossWhy.RESAMPLES_FAILED
    if at is None:
        if not one_seed and math.isinf(lo):
            return CrossKind.NONE, CrossWhy.NO_CROSSING
        return CrossKind.INCONCLUSIVE, CrossWhy.NO_CROSSING
    if one_seed:
        return CrossKind.INCONCLUSIVE, CrossWhy.ONE_SEED
    if math.isinf(hi) or math.log(hi / lo) > math.log(c_max / c_min):
        return CrossKind.INCONCLUSIVE, CrossWhy.TOO_WIDE
    return CrossKind.CROSSES, None
