"""Cost model: analytic FLOPs per token beside measured time give utilisation against the
device's measured matmul peak.

LSH FLOPs are "dense-equivalent": the dot products LSH computes (2 x bucket_size keys per
query per hash round), priced as dense matmuls, which they are not (sorting and gathering
are extra). BigBird's are the products its blocks hold (the gather kernel computes exactly
those; flex computes them in 128-token tiles).
"""
from __future__ import annotations

import functools
import time

import torch

from core.device import synchronize
from core.model import ATTENTION, ModelConfig


@functools.cache
def matmul_peak_flops(device_str: str) -> float:
    """The device's achievable matmul FLOP/s at torch's current thread count, measured
    (bf16 on CUDA, fp32 on CPU), best of five bursts."""
    device = torch.device(device_str)
    n, dtype = (4096, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(5):  # the best burst: on a shared machine a single burst reads low
        reps, t0 = 4, time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best


def flops_per_token(cfg: ModelConfig, seq_len: int, mask_fraction: float = 0.15) -> dict:
    """Analytic training FLOPs per token (3 x forward; recomputation not counted). A GLU
    has three H x I matrices where an MLP has two; a local layer scores each query against
    the keys of its window (`local_window // 2` either side) instead of the sequence, a
    sparse kind against its own keys (BigBird: global, band and random blocks; the window of
    `local`), or the sequence within `full_attn_threshold`."""
    H, FF, E, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.embedding_size, cfg.vocab_size, cfg.num_layers
    kind = ATTENTION[cfg.attention]
    proj = 2 * kind.projections * H * H
    ffn = (6 if cfg.ffn == "glu" else 4) * H * FF
    window = min(2 * (cfg.local_window // 2) + 1, seq_len)
    # a sparse kind takes full attention on batches within full_attn_threshold (the hybrid)
    keys = seq_len if kind.sparse and seq_len <= cfg.full_attn_threshold else kind.keys_per_query(cfg, seq_len)
    attn = sum(4 * (window if cfg.is_local(i) else keys) * H for i in range(L))
    embed = 2 * E * H if cfg.factorized else 0
    head = mask_fraction * (2 * H * E + 2 * E * V)
    forward = L * (proj + ffn) + attn + embed + head
    return {"flops_per_token": 3 * forward, "attention_flops_per_token": 3 * attn,
            "flops_label": kind.flops_label}
