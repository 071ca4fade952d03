"""The optimizer every training step in this project uses, so that measured steps and
trained steps are the same computation."""
from __future__ import annotations

import torch


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch and device support it (the same update
    in one pass: about 15% of a small model's CPU step), the reference loop otherwise."""
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, **kwargs)


def warmup_linear_decay(fraction: float, warmup: float) -> float:
    """The learning-rate factor at `fraction` of the budget: linear warm-up over the first
    `warmup` fraction, then linear decay to 0. Pretraining and fine-tuning share it."""
    if warmup and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    return max(0.0, (1.0 - fraction) / (1.0 - warmup)) if warmup < 1 else 1.0
