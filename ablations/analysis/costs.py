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

from ablations.rundir import result_rows

# cost axis -> (row field, label); lower is cheaper on every axis
AXES = {"flops": ("train_flops", "training FLOPs"), "seconds": ("wall_s", "training seconds"),
        "memory": ("peak_mem_bytes", "peak memory (bytes)"), "params": ("params_unique", "unique parameters")}
# curve axis -> evaluation entry field (FLOPs derived where missing, see `entry_x`)
CURVE_AXES = {"flops": "flops", "seconds": "seconds", "tokens": "tokens"}


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def row_flops(row: dict) -> float | None:
    """Training FLOPs at the end of the run: measured, else tokens × analytic FLOPs per token."""
    measured = _number(row.get("train_flops"))
    if measured is not None:
        return measured
    tokens, per_token = _number(row.get("tokens_seen")), _number(row.get("flops_per_token"))
    return tokens * per_token if tokens is not None and per_token is not None else None


def row_cost(row: dict, axis: str) -> float | None:
    if axis not in AXES:
        raise ValueError(f"unknown cost axis {axis!r}; choose from {', '.join(AXES)}")
    return row_flops(row) if axis == "flops" else _number(row.get(AXES[axis][0]))


def entry_x(entry: dict, row: dict, axis: str) -> float | None:
    """An evaluation's position on a curve axis (flops, seconds or tokens)."""
    if axis not in CURVE_AXES:
        raise ValueError(f"unknown curve axis {axis!r}; choose from {', '.join(CURVE_AXES)}")
    x = _number(entry.get(CURVE_AXES[axis]))
    if x is None and axis == "flops":
        tokens, per_token = _number(entry.get("tokens")), _number(row.get("flops_per_token"))
        x = tokens * per_token if tokens is not None and per_token is not None else None
    return x


def curve(row: dict, axis: str) -> list[tuple[float, dict]]:
    """The row's curve points (`"curve": True` evaluations) as (x, entry), x > 0 ascending;
    of two points at the same x the later one is kept."""
    points: dict[float, dict] = {}
    for e in row.get("evals") or []:
        x = entry_x(e, row, axis) if e.get("curve") else None
        if x is not None and x > 0 and _number(e.get("eval_mlm_loss")) is not None:
            points[x] = e
    return sorted(points.items(), key=lambda p: p[0])


def example_sums(entry: dict, row: dict) -> tuple[list[float], list[int]] | None:
    """A curve point's per-example MLM loss sums and predicted-token counts, or None.

    `mlm_example_losses` covers the first held-out examples; their token counts are the
    entry's `mlm_example_tokens`, else the first counts of the row's final evaluation
    (same examples, same masks). Whether the losses are per-example sums (as
    `eval_mlm_example_loss`) or per-example means is decided by which of the two
    reproduces the entry's `eval_mlm_loss`; means are turned into sums."""
    losses = entry.get("mlm_example_losses")
    if not losses:
        return None
    counts = entry.get("mlm_example_tokens") or (row.get("eval_mlm_example_tokens") or [])[:len(losses)]
    total = sum(counts)
    if len(counts) != len(losses) or not total:
        return None
    as_means = [v * n for v, n in zip(losses, counts)]
    target = _number(entry.get("eval_mlm_loss"))
    if target is not None and abs(sum(as_means) / total - target) < abs(sum(losses) / total - target):
        return as_means, list(counts)
    return [float(v) for v in losses], list(counts)


def _latest(rows: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        out[(r["arm"], r.get("seed", 0), r.get("rung"))] = r
    return out


def loss_points(rows: list[dict], arm: str, axis: str = "flops") -> tuple[dict[int, list[tuple[float, float]]], str]:
    """(seed -> [(cost, eval MLM loss)], source) for one arm: one point per ladder rung
    when the arm has two or more rungs (source "ladder"), else its curve points ("curve")."""
    ok = [r for r in _latest(rows).values() if r["arm"] == arm and r.get("status") == "ok"]
    ladder: dict[int, list[tuple[float, float]]] = {}
    for r in ok:
        c = row_flops(r) if axis == "flops" else _number(r.get({"seconds": "wall_s", "tokens": "tokens_seen"}[axis]))
        loss = _number(r.get("eval_mlm_loss"))
        if r.get("rung") is not None and c and loss is not None:
            ladder.setdefault(r.get("seed", 0), []).append((c, loss))
    if any(len(p) >= 2 for p in ladder.values()):
        return {s: sorted(p) for s, p in ladder.items()}, "ladder"
    curves = {r.get("seed", 0): [(x, float(e["eval_mlm_loss"])) for x, e in curve(r, axis)]
              for r in result_rows(ok)}
    return {s: p for s, p in curves.items() if p}, "curve"
