"""Side-by-side timing on a shared machine: A B A B ... in one process, ratios per round.

Absolute times on 2 shared cores drift with whatever else runs; two steps timed back to
back see the same load, so the per-round ratio is the figure worth reporting (its median,
min and max), never a ratio of medians taken minutes apart.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleave(fns: dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1,
               before_round: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn once per round (order rotated
    every round so that neither side always runs right after the other). `before_round(r)`,
    untimed, may change what round r works on (e.g. the next real batch)."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        if before_round is not None:
            before_round(r)
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def ratio(times: dict[str, list[float]], slow: str, fast: str) -> dict[str, float]:
    """Per-round time(slow) / time(fast): > 1 means `fast` is faster."""
    per_round = [s / f for s, f in zip(times[slow], times[fast])]
    return {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}


def fmt(r: dict[str, float]) -> str:
    return f"{r['median']:.2f}x (min {r['min']:.2f}, max {r['max']:.2f})"
