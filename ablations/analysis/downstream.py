"""Downstream scores read from rows: whether a score is at chance, and whether a component
that saves memory or parameters costs downstream quality beyond noise.

Row fields per task T: `downstream_T` (mean over fine-tuning seeds of the primary metric:
accuracy, or Spearman for regression), `downstream_T_se` (standard error over seeds),
`downstream_T_n` (test examples), `downstream_T_ci` (95% interval of the first seed's
test score), `downstream_T_seeds` (every seed and metric) and `downstream_T_chance` (what a
model that learned nothing scores on the test split: the majority class's share, or 0 for
a correlation; a score whose interval reaches it is marked "at chance").
"""

from __future__ import annotations

import math

from core.stats import Z95


def tasks_in(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k.startswith("downstream_") and k.endswith("_metric"):
                seen[k[len("downstream_"):-len("_metric")]] = None
    return list(seen)


def _total_se(row: dict, task: str) -> float | None:
    """Seed noise and test-set sampling noise together (the interval's half-width / 1.96)."""
    ci, se = row.get(f"downstream_{task}_ci"), row.get(f"downstream_{task}_se")
    if ci is None or se is None:
        return None
    return math.sqrt(se ** 2 + ((ci[1] - ci[0]) / (2 * Z95)) ** 2)


def score_at_chance(row: dict, task: str) -> bool:
    """The first seed's 95% interval reaches what a model that learned nothing scores (the
    majority class's share, or no correlation): the score says nothing about the encoder."""
    chance, ci = row.get(f"downstream_{task}_chance"), row.get(f"downstream_{task}_ci")
    return chance is not None and ci is not None and ci[0] <= chance


def fmt_score(row: dict, task: str) -> str:
    v = row.get(f"downstream_{task}")
    if v is None:
        return "–"
    ci = row.get(f"downstream_{task}_ci") or [math.nan, math.nan]
    text = (f"{v:.3f} ± {row.get(f'downstream_{task}_se', 0):.3f} (n={row.get(f'downstream_{task}_n')}, "
            f"CI {ci[0]:.3f}–{ci[1]:.3f})")
    return text + (f", at chance ({row[f'downstream_{task}_chance']:.3f})" if score_at_chance(row, task) else "")


def compare_downstream(row: dict, ref: dict, task: str) -> str | None:
    a, b = row.get(f"downstream_{task}"), ref.get(f"downstream_{task}")
    sa, sb = _total_se(row, task), _total_se(ref, task)
    if a is None or b is None or sa is None or sb is None:
        return None
    d, noise = a - b, 2 * math.sqrt(sa ** 2 + sb ** 2)
    metric = row.get(f"downstream_{task}_metric", "score")
    if abs(d) <= noise:
        return f"{task} {metric} {d:+.3f}: within noise (±{noise:.3f})"
    if score_at_chance(row, task) and score_at_chance(ref, task):
        return f"{task} {metric} {d:+.3f}: inconclusive (both at chance)"
    return f"{task} {metric} {d:+.3f}: {'better' if d > 0 else 'costs downstream quality'} beyond noise (±{noise:.3f})"


def savings(row: dict, ref: dict) -> str:
    parts = []
    for key, label in (("params_unique", "parameters"), ("peak_mem_bytes", "peak memory")):
        if row.get(key) and ref.get(key):
            r = row[key] / ref[key]
            if r < 0.95:
                parts.append(f"{label} ×{r:.2f}")
    return ", ".join(parts)
