"""Speed of several models measured side by side: A B C, B C A, C A B, ... in one process.

Timing arms minutes apart (each during its own training) compares the machine's load as
much as the models. Here every model is built and warmed first, then each round times
one training step of every model in turn, with the order rotated every round so that no
model always runs right after the same neighbour. The per-round times pair up: the ratio
of two models within a round cancels most of the load that changed between rounds.
"""
from __future__ import annotations

import time

import torch

from core.device import is_oom, oom_result, synchronize
from core.measure.batch import make_batch, train_step
from core.model import ModelConfig, PretrainingModel
from core.optim import adamw


def _prepare(cfg: ModelConfig, batch_size: int, seq_len: int, device: torch.device, seed: int):
    torch.manual_seed(seed)
    model = PretrainingModel(cfg).to(device).train()
    opt = adamw(model.parameters(), lr=1e-5)
    batch = make_batch(cfg, batch_size, seq_len, seed=seed, device=device)
    return model, opt, batch


def _time_step(model, opt, batch, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    train_step(model, opt, batch, device)
    synchronize(device)
    return time.perf_counter() - t0


def interleaved_speed(configs: dict[str, ModelConfig], batch_size: int, seq_len: int, device: torch.device,
                      rounds: int = 5, warmup: int = 1, seed: int = 0) -> dict[str, dict]:
    """{name: {"status", "step_s": [one time per round], "tokens"}}; a model that does not
    fit is {"status": "oom"} and the others are still timed."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    out: dict[str, dict] = {}
    ready: dict[str, tuple] = {}
    for name, cfg in configs.items():
        try:
            ready[name] = _prepare(cfg, batch_size, seq_len, device, seed)
            for _ in range(warmup):
                _time_step(*ready[name], device)
        except Exception as err:  # noqa: BLE001 - OOM is a result
            if not is_oom(err):
                raise
            ready.pop(name, None)
            out[name] = {**oom_result(err), "step_s": []}
    names = list(ready)
    for name in names:
        out[name] = {"status": "ok", "step_s": [], "tokens": int(ready[name][2]["attention_mask"].sum())}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)] if names else []:
            out[name]["step_s"].append(_time_step(*ready[name], device))
    return out
