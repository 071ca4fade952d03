"""A budget ladder: every arm at K budgets for the price of about one run (`run --ladder K`).

Where two arms' loss curves cross, one budget cannot say which is better; K budgets per
arm can. Training K runs would cost the sum of their budgets. With a warmup-stable-decay
schedule (`core.optim.warmup_stable_decay`) and a warm-up in steps, a run's rate up to
its cooldown does not depend on its budget, so one long run at constant rate *is* every
shorter run up to that run's cooldown start (Hägele et al. 2024). The ladder trains one
wsd run (the largest budget), pauses it at each rung's cooldown start `(1 - decay) x
budget_k`, copies the checkpoint into the rung's directory and cools it down there to
budget_k. Cost: the largest rung's stable phase plus K cooldowns.

Rung budgets are geometric and end at the run's budget: budget_k = budget x ratio**(k -
K + 1), k = 0 .. K-1 (ratio 2: B/4, B/2, B for K = 3). Every budget field that is set
(steps, tokens, seconds, and any later one in `BUDGET_FIELDS`) is scaled alike; integer
budgets are rounded (at least 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from core.train import BUDGET_FIELDS, Budget, TrainConfig


def budget_of(train: TrainConfig) -> dict:
    """The set budget fields of a config: {"max_tokens": 60000}."""
    return Budget.of(train).fields()


def rung_budgets(budget: dict, rungs: int, ratio: float = 2.0) -> list[dict]:
    """K budgets, geometric with `ratio`, the last one `budget` itself."""
    out = []
    for k in range(rungs):
        scale = ratio ** (k - rungs + 1)
        out.append({f: (max(1, round(v * scale)) if isinstance(v, int) else v * scale) for f, v in budget.items()})
    return out


def budget_axis(budget: dict) -> tuple[str, float]:
    """('tokens', 60000): what a rung's budget is counted in, and how much, for a row's
    `rung_budget` and `rung_budget_unit`: the budget's first field (`core.train.budget`)."""
    field, amount = Budget.of(budget).first
    return field.removeprefix("max_"), amount


@dataclass(frozen=True)
class Ladder:
    stable: TrainConfig          # the long wsd run (largest budget): paused at each rung's cooldown start
    budgets: tuple[dict, ...]    # rung k's budget fields
    ratio: float

    @classmethod
    def of(cls, train: TrainConfig, rungs: int, ratio: float) -> Ladder:
        return cls(train, tuple(rung_budgets(budget_of(train), rungs, ratio)), ratio)

    def __len__(self) -> int:
        return len(self.budgets)

    def rung(self, k: int) -> TrainConfig:
        """Rung k's own run: the stable run's configuration with rung k's budget."""
        unset = dict.fromkeys(BUDGET_FIELDS)
        return self.stable.replace(**{**unset, **self.budgets[k]})

    def branch_point(self, k: int) -> dict:
        """Where rung k's cooldown starts: the stable run pauses there (`Trainer.train(until=)`)."""
        return {f: (1 - self.stable.decay) * v for f, v in self.budgets[k].items()}

    def cost(self, spans: list[tuple[int, int]]) -> str:
        """One line: what the ladder trained against K separate runs. `spans`: each rung's
        (branch step, final step); the stable run trained up to the last rung's branch."""
        cooldowns = [end - start for start, end in spans]
        stable = spans[-1][0]
        ladder, separate = stable + sum(cooldowns), sum(end for _, end in spans)
        return (f"ladder cost {ladder:,} optimizer steps (stable phase {stable:,} + cooldowns "
                f"{', '.join(f'{c:,}' for c in cooldowns)}) against {separate:,} for {len(spans)} separate runs "
                f"(x{ladder / max(separate, 1):.2f})")


def warmup_steps_for(train: TrainConfig, tokens_per_step: int, rungs: int, ratio: float) -> int:
    """An absolute warm-up for the ladder: the config's `warmup` fraction of the smallest
    rung, in steps (estimated from tokens at full rows where the budget is in tokens), so
    that no rung's cooldown begins inside the warm-up. A set `warmup_steps` is kept."""
    if train.warmup_steps or not train.warmup:
        return train.warmup_steps
    smallest = rung_budgets(budget_of(train), rungs, ratio)[0]
    if smallest.get("max_steps"):
        steps = smallest["max_steps"]
    elif smallest.get("max_tokens"):
        steps = smallest["max_tokens"] / tokens_per_step
    elif smallest.get("max_flops") and train.flops_per_step:
        steps = smallest["max_flops"] / train.flops_per_step
    else:
        raise ValueError(f"--ladder needs an absolute warm-up, and a budget of {smallest} gives no step count "
                         "to derive it from: set train.warmup_steps (an arm or base override) or use --steps/--tokens/--flops")
    return max(1, round(train.warmup * steps))
