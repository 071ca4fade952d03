"""The optimizer every training step in this project uses, so that measured steps and
trained steps are the same computation, and the learning-rate schedules it follows."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from core.registry import unknown_name_error

if TYPE_CHECKING:
    import torch


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch and device support it (the same update
    in one pass: about 15% of a small model's CPU step), the reference loop otherwise."""
    import torch  # here, not above: TrainConfig validates schedules without importing torch

    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, **kwargs)


# the width rule's anchor: the peak rate that leaves the unigram stage soonest at H = 128
# (the CPU budgets' micro size; docs/training.md#the-learning-rate-follows-the-width)
BASE_LR, BASE_WIDTH = 1e-3, 128


def lr_for_width(hidden_size: int, base_lr: float = BASE_LR, base_width: int = BASE_WIDTH) -> float:
    """The peak rate for a model of width H: base_lr x base_width / H (muP's rule for Adam on
    hidden matrices). Adam's first steps move the hidden states by about lr x width, so a
    rate that suits H = 128 moves a model of H = 768 six times as far."""
    return base_lr * base_width / hidden_size


def warmup_linear_decay(fraction: float, warmup: float) -> float:
    """The learning-rate factor at `fraction` of the budget: linear warm-up over the first
    `warmup` fraction, then linear decay to 0. Pretraining and fine-tuning share it."""
    if warmup and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    return max(0.0, (1.0 - fraction) / (1.0 - warmup)) if warmup < 1 else 1.0


def warmup_stable_decay(fraction: float, warmup: float, decay: float) -> float:
    """Warmup-stable-decay (WSD; MiniCPM, Hu et al. 2024; Hägele et al. 2024): linear
    warm-up over the first `warmup` fraction, the peak rate until `1 - decay`, then a
    cooldown to 0 over the last `decay` fraction.

    Why WSD: up to its cooldown the rate does not depend on the budget, so one long
    constant-rate run is every shorter run's trajectory too, and each budget costs only
    its cooldown (the ablations' `--ladder`). The cooldown is 1 - sqrt, not linear: Hägele
    et al. find it reaches a lower final loss than a linear cooldown of the same length,
    on par with a cosine schedule tuned to the budget."""
    if warmup and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    start = 1.0 - decay
    if fraction <= start:
        return 1.0
    left = max(0.0, 1.0 - fraction) / decay  # of the cooldown, from 1 to 0 (exact at both ends)
    return 1.0 - math.sqrt(max(0.0, 1.0 - left))


SCHEDULES = {
    "linear": lambda fraction, warmup, decay: warmup_linear_decay(fraction, warmup),
    "wsd": warmup_stable_decay,
}


def check_schedule(name: str) -> None:
    if name not in SCHEDULES:
        raise unknown_name_error("schedule", name, SCHEDULES)


def lr_factor(schedule: str, fraction: float, warmup: float, decay: float, step: int = 0,
              warmup_steps: int = 0) -> float:
    """The factor for the step about to be taken (`step` steps done, `fraction` of the
    budget used). `warmup_steps` > 0 replaces the fractional warm-up by a ramp over that
    many steps, whatever the budget: then a WSD run's rates up to its cooldown are the same
    for every budget (a linear schedule still decays over the whole budget, ramp applied)."""
    check_schedule(schedule)
    if warmup_steps > 0:
        return min(1.0, max(step / warmup_steps, 1e-3)) * SCHEDULES[schedule](fraction, 0.0, decay)
    return SCHEDULES[schedule](fraction, warmup, decay)
