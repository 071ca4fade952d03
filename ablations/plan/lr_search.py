"""`--lr-search`: each arm at its own best learning rate, chosen on a short part of the budget.

Comparing every arm at one rate favours the arm that rate suits. The search trains each
arm (its first seed) at a grid of rates, multiples of the arm's own base rate (the width
rule, or --lr), on `fraction` of the budget, scores each on the same fixed-mask held-out
examples, and keeps the rate with the lowest held-out MLM loss; every seed then trains at
that rate for the full budget. Search points are an ablation of their own (one arm per
(arm, rate)) in RUN_DIR/lr-search/, so they resume like any run and are never trained twice.

The search's cost is kept out of the arms' own training cost, and reported beside it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ablations.config import RunConfig
from ablations.plan.resolve import base_rate, resolve_model
from ablations.plan.selection import select_arms
from ablations.rows import Row
from ablations.rundir import SEARCH_DIR
from ablations.specs import AblationSpec, Arm, start_arm


def point_name(arm: str, lr: float) -> str:
    return f"{arm} @ lr {lr:.3g}"


def searched_arms(spec: AblationSpec, config: RunConfig) -> dict[str, float]:
    """arm -> its base rate, for the arms the search tunes: those this process trains whose
    rate an arm override does not pin. `config` is settled."""
    pinned = spec.base_overrides.get("train.lr")
    return {a.name: pinned if pinned is not None else base_rate(resolve_model(spec, a, config)[0], config)[0]
            for a in select_arms(spec, config) if "train.lr" not in a.overrides}


def search_spec(spec: AblationSpec, bases: dict[str, float], grid: tuple[float, ...]) -> AblationSpec:
    """One arm per (arm, rate); the first is a point of the base arm, so that arms sharing
    its data are scored on its held-out examples (paired)."""
    by_name = {a.name: a for a in spec.arms}
    for name in bases:
        if (start := start_arm(by_name[name])) is not None:
            raise ValueError(f"--lr-search: arm {name!r} of {spec.name} warm-starts from {start}, another arm of the "
                             "run, and a search point would start from weights not yet trained: give one rate with "
                             "--lr, or pin each arm's train.lr in a TOML spec")
    arms = [Arm(point_name(name, lr * m), {**by_name[name].overrides, "train.lr": lr * m},
                f"{name} at {m:g} x its rate", component=name)
            for name, lr in bases.items() for m in grid]
    return dataclasses.replace(spec, name=f"{spec.name}/{SEARCH_DIR}", arms=tuple(arms), expectations=(),
                               description=f"learning-rate search of {spec.name}")


def search_config(config: RunConfig, out: str, fraction: float) -> RunConfig:
    """The run's config for the search points (settled): the first seed, `fraction` of the budget."""
    b = config.budget
    scaled = {"tokens": b.max_tokens and max(1, round(b.max_tokens * fraction)),
              "steps": b.max_steps and max(1, round(b.max_steps * fraction)),
              "flops": b.max_flops and b.max_flops * fraction,
              "time_budget": b.max_seconds and b.max_seconds * fraction}
    return config.replace(**{k: v or None for k, v in scaled.items()}, seeds=1, out=out, arms=None, shard=None,
                          ladder=0, downstream=(), lr=None, lr_search=False)


@dataclass(frozen=True)
class SearchResult:
    arm: str
    chosen: float | None                 # None: no search point finished ok
    losses: dict[float, float | None]    # rate -> final held-out MLM loss (None: not ok)
    edge: bool                           # the best rate is the grid's smallest or largest
    flops: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "losses": {f"{k:.6g}": v for k, v in self.losses.items()},
                "edge": self.edge, "flops": self.flops, "seconds": self.seconds}


def choose_rates(rows: dict[tuple[str, int], Row], bases: dict[str, float], grid: tuple[float, ...]) \
        -> dict[str, SearchResult]:
    """Per arm, the rate whose search point has the lowest held-out MLM loss (rows: the
    search run's results, `ablations.rundir.results`)."""
    by_name = {r.arm: r for r in rows.values()}
    out = {}
    for arm, base in bases.items():
        points = {base * m: by_name.get(point_name(arm, base * m)) for m in grid}
        losses = {lr: _loss(r) for lr, r in points.items()}
        ok = {lr: v for lr, v in losses.items() if v is not None}
        chosen = min(ok, key=ok.get) if ok else None
        rates = sorted(points)
        out[arm] = SearchResult(arm, chosen, losses, chosen is not None and chosen in (rates[0], rates[-1]),
                                sum(r.train_flops or 0 for r in points.values() if r),
                                sum(r.wall_s or 0 for r in points.values() if r))
    return out


def _loss(row: Row | None) -> float | None:
    """A search point's final held-out MLM loss, or None where it did not finish ok."""
    if row is None or row.status != "ok" or row.eval_mlm_loss is None or not math.isfinite(row.eval_mlm_loss):
        return None
    return row.eval_mlm_loss
