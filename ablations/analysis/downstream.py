"""Downstream scores read from rows: whether a score is at chance, and whether a component
that saves memory or parameters costs downstream quality beyond noise.

Row fields per task T: `downstream_T` (mean over fine-tuning seeds of the primary metric:
accuracy, or Spearman for regression), `downstream_T_se` (standard error over seeds),
`downstream_T_n` (test examples), `downstream_T_ci` (95% interval of the first seed's
test score), `downstream_T_seeds` (every seed and metric) and `downstream_T_chance` (what a
model that learned nothing scores on the test split: the majority class's share, or 0 for
a correlation; a score whose interval reaches it is marked "at chance"),
`downstream_T_undefined` (fine-tuning seeds whose score was undefined, e.g. a correlation of
constant predictions; left out of the mean) and `downstream_T_why` (why).

An undefined score is None (NaN in rows written before): it is shown as undefined, with
its reason, never as 0; it is never at chance and never compared.
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


def _num(value) -> float | None:
    """A number from a row; None for an undefined (None or NaN) one."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _field(row: dict, task: str, name: str = "") -> float | None:
    return _num(row.get(f"downstream_{task}" + (f"_{name}" if name else "")))


def _ci(row: dict, task: str) -> tuple[float, float] | None:
    ci = row.get(f"downstream_{task}_ci") or [None, None]
    low, high = _num(ci[0]), _num(ci[1])
    return None if low is None or high is None else (low, high)


def undefined_seeds(row: dict, task: str) -> str:
    """'' if every seed's score is defined; else e.g. 'undefined: the predictions are
    constant (2 of 3 seeds)'."""
    k = row.get(f"downstream_{task}_undefined") or 0
    if not k and not (f"downstream_{task}" in row and _field(row, task) is None):
        return ""
    seeds = len((row.get(f"downstream_{task}_seeds") or {}).get("values") or []) or k or 1
    why = row.get(f"downstream_{task}_why") or "undefined"
    return f"{why} ({k or seeds} of {seeds} seed{'s' if seeds > 1 else ''})"


def fmt_value(row: dict, task: str, name: str = "") -> str:
    """One number of a row to three places, or 'undefined' (never 0)."""
    v = _field(row, task, name)
    return "undefined" if v is None else f"{v:.3f}"


def _total_se(row: dict, task: str) -> float | None:
    """Seed noise and test-set sampling noise together (the interval's half-width / 1.96)."""
    ci, se = _ci(row, task), _field(row, task, "se")
    if ci is None or se is None:
        return None
    return math.sqrt(se ** 2 + ((ci[1] - ci[0]) / (2 * Z95)) ** 2)


def score_at_chance(row: dict, task: str) -> bool:
    """The first seed's 95% interval reaches what a model that learned nothing scores (the
    majority class's share, or no correlation): the score says nothing about the encoder.
    An undefined score is not at chance: it is undefined."""
    chance, ci = _field(row, task, "chance"), _ci(row, task)
    return chance is not None and ci is not None and ci[0] <= chance


def fmt_score(row: dict, task: str) -> str:
    if f"downstream_{task}" not in row:
        return "–"
    v, ci, missing = _field(row, task), _ci(row, task), undefined_seeds(row, task)
    if v is None:
        return missing or "undefined"
    se = _field(row, task, "se") or 0.0
    text = f"{v:.3f} ± {se:.3f} (n={row.get(f'downstream_{task}_n')}, " + \
        (f"CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else "first seed's CI undefined)")
    text += f"; mean of the defined seeds, {missing}" if missing else ""
    return text + (f", at chance ({_field(row, task, 'chance'):.3f})" if score_at_chance(row, task) else "")


def compare_downstream(row: dict, ref: dict, task: str) -> str | None:
    """A verdict on `task`, or None where either score is missing or undefined."""
    a, b = _field(row, task), _field(ref, task)
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
