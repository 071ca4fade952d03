"""Where a sparse attention starts to pay: from bench rows (`python -m ablations bench`, the
`seq_scaling` ablation), the sequence length from which each variant is cheaper than a
baseline (full attention: `bert`) in time and in memory on the machine that measured them,
and how each variant's memory grows with length. Pure functions of rows: no torch.

A row is any object with the bench row's attributes (`ablations.rows.BenchRow`) or a
mapping with its keys: variant, seq_len, batch_size, status, tokens_per_s, peak_mem_bytes,
saved_bytes, device, size. Time is compared as tokens per second (the bench holds the
tokens per batch constant, so a higher rate is a cheaper step per token), memory as peak
memory (`peak_mem_bytes`) and as the bytes saved for backward (`saved_bytes`, deterministic).
A baseline out of memory where the variant fits counts as the variant being cheaper there.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# metric -> (row field, whether higher is cheaper)
METRICS = {"time": ("tokens_per_s", True), "memory": ("peak_mem_bytes", False), "saved": ("saved_bytes", False)}


def _get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


@dataclass(frozen=True)
class Crossover:
    """Where `variant` becomes cheaper than `baseline` in `metric` (time, memory or saved).

    `ratios[T]`: the variant's cost over the baseline's at T (< 1: cheaper), "oom" where the
    baseline ran out of memory and the variant did not, None where either is missing.
    `length`: the shortest measured length from which the variant is cheaper at every longer
    measured one (None: not cheaper at the longest). `interpolated`: where the ratio crosses 1
    between the measured length before `length` and `length`, linear in log length and log
    ratio (None when `length` is the shortest measured, or the baseline's side is an oom)."""
    variant: str
    baseline: str
    metric: str
    ratios: dict[int, float | str | None] = field(default_factory=dict)
    length: int | None = None
    interpolated: float | None = None

    @property
    def measured(self) -> list[int]:
        return sorted(t for t, r in self.ratios.items() if r is not None)


def _costs(rows: Iterable[Any], variant: str, metric: str) -> dict[int, float | str]:
    """length -> the variant's cost (the latest row of each length), "oom" when it ran out."""
    key, _ = METRICS[metric]
    out: dict[int, float | str] = {}
    for r in rows:
        if _get(r, "variant") != variant or _get(r, "seq_len") is None:
            continue
        T, status = int(_get(r, "seq_len")), _get(r, "status")
        if status == "oom":
            out[T] = "oom"
        elif status == "ok" and _get(r, key):
            out[T] = float(_get(r, key))
    return out


def crossover(rows: Iterable[Any], variant: str, baseline: str = "bert", metric: str = "time") -> Crossover:
    rows = list(rows)
    _, higher_cheaper = METRICS[metric]
    mine, base = _costs(rows, variant, metric), _costs(rows, baseline, metric)
    ratios: dict[int, float | str | None] = {}
    for T in sorted(set(mine) | set(base)):
        a, b = mine.get(T), base.get(T)
        if a is None or b is None or a == "oom":
            ratios[T] = None
        elif b == "oom":
            ratios[T] = "oom"
        else:
            ratios[T] = b / a if higher_cheaper else a / b   # the variant's cost over the baseline's
    lengths = [T for T in sorted(ratios) if ratios[T] is not None]
    cheaper = {T: ratios[T] == "oom" or ratios[T] < 1 for T in lengths}
    length = None
    for T in reversed(lengths):
        if not cheaper[T]:
            break
        length = T
    interpolated = None
    if length is not None and length != lengths[0] and ratios[length] != "oom":
        before = lengths[lengths.index(length) - 1]
        r0, r1 = ratios[before], ratios[length]
        if isinstance(r0, float) and isinstance(r1, float) and r0 > 0 and r1 > 0 and r0 != r1:
            x0, x1, y0, y1 = math.log(before), math.log(length), math.log(r0), math.log(r1)
            interpolated = math.exp(x0 + (0 - y0) * (x1 - x0) / (y1 - y0))
    return Crossover(variant, baseline, metric, ratios, length, interpolated)


def one_machine(rows: Iterable[Any]) -> list[Any]:
    """The rows of the (device, size) most rows were measured on: crossovers compare like with like."""
    rows = list(rows)
    counts = Counter((_get(r, "device"), _get(r, "size")) for r in rows)
    if not counts:
        return []
    where = counts.most_common(1)[0][0]
    return [r for r in rows if (_get(r, "device"), _get(r, "size")) == where]


def crossovers(rows: Iterable[Any], baseline: str = "bert", variants: Iterable[str] | None = None,
               metrics: Iterable[str] = ("time", "memory")) -> list[Crossover]:
    """Every variant's crossover against `baseline` in each metric, on one (device, size)."""
    rows = one_machine(rows)
    names = list(variants) if variants is not None else sorted({_get(r, "variant") for r in rows} - {baseline})
    return [crossover(rows, v, baseline, m) for v in names for m in metrics]


def growth_exponents(rows: Iterable[Any], baseline: str = "bert", variants: Iterable[str] | None = None) \
        -> dict[str, float]:
    """The baseline's and every variant's `growth_exponent` of the memory saved for backward."""
    rows = list(rows)
    names = list(variants) if variants is not None else sorted({_get(r, "variant") for r in one_machine(rows)})
    out = {}
    for v in [baseline, *[n for n in names if n != baseline]]:
        p = growth_exponent(rows, v)
        if p is not None:
            out[v] = p
    return out


def growth_exponent(rows: Iterable[Any], variant: str, key: str = "saved_bytes", tail: int = 3) -> float | None:
    """p in (cost per sequence) ~ T^p over the `tail` longest lengths measured (per sequence:
    the row's figure over its batch size, since the bench holds tokens per batch constant):
    about 1 for memory linear in length, 2 for full attention's scores."""
    pts = []
    for r in one_machine(rows):
        v, T, B = _get(r, key), _get(r, "seq_len"), _get(r, "batch_size") or 1
        if _get(r, "variant") == variant and _get(r, "status") == "ok" and v and T:
            pts.append((math.log(T), math.log(v / B)))
    pts = sorted(dict(pts).items())[-tail:]
    if len(pts) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None

