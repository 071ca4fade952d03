"""Speed: warm-up steps, then timed steps with device synchronisation.

Median/min/max seconds of a full training step (forward, backward, AdamW), training and
inference tokens per second (non-padding tokens). Inference runs in eval mode under
`torch.inference_mode`, which skips autograd's version counters and views bookkeeping,
the way a deployed model runs.
"""
from __future__ import annotations

import statistics
import time

import torch

from core.device import autocast, synchronize
from core.measure.batch import train_step
from core.model import PretrainingModel
from core.optim import adamw


def measure_speed(model: PretrainingModel, batch: dict, device: torch.device, warmup: int = 2,
                  steps: int = 5) -> dict:
    tokens = int(batch["attention_mask"].sum())
    opt = adamw(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for i in range(warmup + steps):
        synchronize(device)
        t0 = time.perf_counter()
        train_step(model, opt, batch, device)
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.eval()
    infer = []
    with torch.inference_mode():
        for i in range(warmup + steps):
            synchronize(device)
            t0 = time.perf_counter()
            with autocast(device):
                model(**batch)
            synchronize(device)
            if i >= warmup:
                infer.append(time.perf_counter() - t0)
    model.train()
    med = statistics.median(times)
    return {
        "step_s_median": med, "step_s_min": min(times), "step_s_max": max(times),
        "tokens_per_s": tokens / med, "tokens_per_s_min": tokens / max(times), "tokens_per_s_max": tokens / min(times),
        "infer_tokens_per_s": tokens / statistics.median(infer), "infer_tokens_per_s_min": tokens / max(infer),
        "infer_tokens_per_s_max": tokens / min(infer), "timed_steps": steps, "warmup_steps": warmup,
    }


