"""What an arm cost, and its held-out loss against what it had spent: read from rows.

The compute analyses (`pareto`, `equal_compute`, `crossover`) and the plots read costs
and curves only through here, so that older rows keep working:
- training FLOPs are the row's measured `train_flops`; a row without it (written before
  FLOPs were counted) falls back to `tokens_seen * flops_per_token` (the analytic cost
  model's training FLOPs per token); a row with neither has no FLOPs figure;
- a curve point's FLOPs are its `flops`, else `tokens * flops_per_token` likewise;
- ladder runs (`--ladder K`) write one row per rung; the largest rung is the arm's result
  (`ablations.rundir.results`), and every rung is one (cost, loss) point (`loss_points`).
"""
from __future__ import annotations

import math

from ablations.rows import EvalPoint, Row
from ablations.rundir import result_rows

AXES = ("flops", "seconds", "memory", "params")   # the cost axes; lower is cheaper on every one
CURVE_AXES = ("flops", "seconds", "tokens")       # the x axes of a curve (FLOPs derived where missing: `entry_x`)


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def row_flops(row: Row) -> float | None:
    """Training FLOPs at the end of the run: measured, else tokens × analytic FLOPs per token."""
    measured = _number(row.train_flops)
    if measured is not None:
        return measured
    tokens, per_token = _number(row.tokens_seen), _number(row.flops_per_token)
    return tokens * per_token if tokens is not None and per_token is not None else None


def row_cost(row: Row, axis: str) -> float | None:
    if axis not in AXES:
        raise ValueError(f"unknown cost axis {axis!r}; choose from {', '.join(AXES)}")
    if axis == "flops":
        return row_flops(row)
    return _number({"seconds": row.wall_s, "memory": row.peak_mem_bytes, "params": row.params_unique}[axis])


def entry_x(entry: EvalPoint, row: Row, axis: str) -> float | None:
    """An evaluation's position on a curve axis (flops, seconds or tokens)."""
    if axis not in CURVE_AXES:
        raise ValueError(f"unknown curve axis {axis!r}; choose from {', '.join(CURVE_AXES)}")
    x = _number({"flops": entry.flops, "seconds": entry.seconds, "tokens": entry.tokens}[axis])
    if x is None and axis == "flops":
        tokens, per_token = _number(entry.tokens), _number(row.flops_per_token)
        x = tokens * per_token if tokens is not None and per_token is not None else None
    return x


def curve(row: Row, axis: str) -> list[tuple[float, EvalPoint]]:
    """The row's curve points (`curve` evaluations) as (x, entry), x > 0 ascending;
    of two points at the same x the later one is kept."""
    points: dict[float, EvalPoint] = {}
    for e in row.evals:
        x = entry_x(e, row, axis) if e.curve else None
        if x is not None and x > 0 and _number(e.eval_mlm_loss) is not None:
            points[x] = e
    return sorted(points.items(), key=lambda p: p[0])


def example_sums(entry: EvalPoint, row: Row) -> tuple[list[float], list[int]] | None:
    """A curve point's per-example MLM loss sums and predicted-token counts, or None.

    `mlm_example_losses` covers the first held-out examples; their token counts are the
    entry's `mlm_example_tokens`, else the first counts of the row's final evaluation
    (same examples, same masks). Whether the losses are per-example sums (as
    `eval_mlm_example_loss`) or per-example means is decided by which of the two
    reproduces the entry's `eval_mlm_loss`; means are turned into sums."""
    losses = entry.mlm_example_losses
    if not losses:
        return None
    counts = entry.mlm_example_tokens or (row.eval_mlm_example_tokens or [])[:len(losses)]
    total = sum(counts)
    if len(counts) != len(losses) or not total:
        return None
    as_means = [v * n for v, n in zip(losses, counts)]
    target = _number(entry.eval_mlm_loss)
    if target is not None and abs(sum(as_means) / total - target) < abs(sum(losses) / total - target):
        return as_means, list(counts)
    return [float(v) for v in losses], list(counts)


def _latest(rows: list[Row]) -> dict[tuple, Row]:
    out: dict[tuple, Row] = {}
    for r in rows:
        out[(r.arm, r.seed, r.rung)] = r
    return out


def loss_points(rows: list[Row], arm: str, axis: str = "flops") -> tuple[dict[int, list[tuple[float, float]]], str]:
    """(seed -> [(cost, eval MLM loss)], source) for one arm: one point per ladder rung
    when the arm has two or more rungs (source "ladder"), else its curve points ("curve")."""
    ok = [r for r in _latest(rows).values() if r.arm == arm and r.ok]
    ladder: dict[int, list[tuple[float, float]]] = {}
    for r in ok:
        c = row_flops(r) if axis == "flops" else _number({"seconds": r.wall_s, "tokens": r.tokens_seen}[axis])
        loss = _number(r.eval_mlm_loss)
        if r.rung is not None and c and loss is not None:
            ladder.setdefault(r.seed, []).append((c, loss))
    if any(len(p) >= 2 for p in ladder.values()):
        return {s: sorted(p) for s, p in ladder.items()}, "ladder"
    curves = {r.seed: [(x, float(e.eval_mlm_loss)) for x, e in curve(r, axis)] for r in result_rows(ok)}
    return {s: p for s, p in curves.items() if p}, "curve"
