"""A run's budget: which TrainConfig fields set it, the one order they are read in, and how
much of it a run has used.

Several budgets may be set at once; the first one reached stops a run. Where one budget
must speak for all (what a run's arms are matched on, a ladder rung's unit), the first set
field in `BUDGET_FIELDS` does: FLOPs, then tokens, then steps, then seconds (a wall-clock
budget beside another is a safety limit, not what the arms are matched on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUDGET_FIELDS = ("max_flops", "max_tokens", "max_steps", "max_seconds")
# which Progress counter each budget field is measured by
BUDGET_PROGRESS = {"max_flops": "flops", "max_tokens": "tokens", "max_steps": "step", "max_seconds": "seconds"}


def fraction_under(progress: dict, budget: dict) -> float:
    """The largest fraction of any set budget that `progress` (Progress fields) has used."""
    parts = [progress.get(counter, 0) / budget[field] for field, counter in BUDGET_PROGRESS.items()
             if budget.get(field)]
    return min(1.0, max(parts, default=0.0))


def reached(progress: dict, budget: dict) -> str | None:
    """The budget that stopped a run: "steps", "tokens", "flops" or "seconds" (None: none
    reached yet). Where several are reached, the one used furthest; `BUDGET_FIELDS` order
    breaks a tie. `--steps 100000000 --time-budget 5s` stops on time: "seconds"."""
    used = [(progress.get(counter, 0) / budget[field], -i, field) for i, (field, counter)
            in enumerate(BUDGET_PROGRESS.items()) if budget.get(field)]
    done = [u for u in used if u[0] >= 1.0]
    return max(done)[2].removeprefix("max_") if done else None


@dataclass(frozen=True)
class Budget:
    """The budget fields that are set (a value of 0 or None is unset), read in one order."""
    max_flops: float | None = None
    max_tokens: int | None = None
    max_steps: int | None = None
    max_seconds: float | None = None

    @classmethod
    def of(cls, fields: dict[str, Any] | Any) -> Budget:
        """From a dict of budget fields, or from anything with them as attributes (a TrainConfig)."""
        get = fields.get if isinstance(fields, dict) else (lambda k: getattr(fields, k, None))
        return cls(**{k: get(k) or None for k in BUDGET_FIELDS})

    def fields(self) -> dict[str, Any]:
        """{"max_tokens": 60000}: the set fields, in BUDGET_FIELDS order."""
        return {k: getattr(self, k) for k in BUDGET_FIELDS if getattr(self, k)}

    def __bool__(self) -> bool:
        return bool(self.fields())

    @property
    def first(self) -> tuple[str, float] | None:
        """("max_tokens", 60000): the field that speaks for the budget, or None when none is set."""
        return next(iter(self.fields().items()), None)

    @property
    def kind(self) -> str:
        """What a run's arms are matched on: "flops", "tokens", "steps" or "seconds" ("steps" when unset)."""
        first = self.first
        return first[0].removeprefix("max_") if first else "steps"
