"""Measured training FLOPs: one real step (forward and backward) counted by torch.

`cost.flops_per_token` is an estimate from a formula; this is the count of what the step
really runs, through `torch.utils.flop_counter.FlopCounterMode`: every matmul, bmm and
attention kernel dispatched, including what a formula leaves out or gets wrong:
LSH's hashing rotations and its chunked bucket attention, the reversible encoder's
recomputation of every layer in backward (reformer-pytorch runs it inside the backward
pass, where the counter sees it), and the scores that fused attention kernels recompute
in their backward (torch counts SDPA's backward as 5 bmms against the 4 of plain
autograd). Element-wise work (softmax, GELU, layer norm, dropout, sorting) is not counted
by torch and not by `cost` either: FLOPs here are matmul FLOPs.

Budgets matched on this count (`TrainConfig.max_flops`) give every arm the same compute,
whatever its architecture does with it.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from core.device import autocast
from core.measure.batch import make_batch
from core.measure.cost import flops_per_token
from core.model import IGNORE_INDEX, ModelConfig, PretrainingModel

_aten = torch.ops.aten


def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch (2.13) counts SDPA's CUDA kernels (flash, memory-efficient, cuDNN) but not the CPU
# flash kernel that SDPA dispatches to on CPU, so attention would read as free there; the
# same formulas as the CUDA kernels are registered for it here
CPU_SDPA = {_aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
            _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward}


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker, which we do not need (only the
    global total) and which fails inside reformer-pytorch's reversible forward: that runs
    under no_grad on views of a tensor that requires grad, and the tracker cannot attach
    its backward hooks to those views."""

    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def flops_batch(cfg: ModelConfig, batch_size: int, seq_len: int, mask_fraction: float = 0.15,
                seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """A random pretraining batch with exactly round(mask_fraction x seq_len) predicted
    positions per row (at least one), so that the MLM head, which runs only on those, costs
    what the analytic model charges for `mask_fraction`."""
    batch = make_batch(cfg, batch_size, seq_len, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    k = max(1, round(mask_fraction * seq_len))
    picked = torch.zeros(batch_size, seq_len, dtype=torch.bool)
    for row in picked:
        row[torch.randperm(seq_len, generator=g)[:k]] = True
    ids = batch["input_ids"]
    batch["mlm_labels"] = torch.where(picked, ids, torch.full_like(ids, IGNORE_INDEX))
    return {key: v.to(device) for key, v in batch.items()}


def count_step_flops(model: PretrainingModel, batch: dict, device: torch.device,
                     precision: str = "auto") -> dict[str, int]:
    """FLOPs of one forward and backward of `model` on `batch`, by aten op (train mode,
    autocast as in training; the optimizer's element-wise update is not a matmul)."""
    counter = FlopCounterMode(display=False, custom_mapping=CPU_SDPA)
    counter.mod_tracker = _GlobalOnly()
    model.train()
    with counter:
        with autocast(device, precision):
            loss = model(**batch).loss
        loss.backward()
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def measured_flops(model_cfg: ModelConfig, batch_size: int, seq_len: int, device: str | torch.device = "cpu",
                   mask_fraction: float = 0.15, seed: int = 0, precision: str = "auto") -> dict:
    """One real training step's FLOPs at this batch shape, with the analytic estimate beside
    it. The caller's RNG state is left as it was (model init and LSH hashing draw from it).

    Returns flops_per_step (the batch's forward and backward), flops_per_token (per step /
    (batch x seq_len): padding positions cost what real ones do), flops_by_op,
    flops_per_token_analytic and flops_label (`cost.flops_per_token` at the batch's exact
    mask fraction: "exact", or "dense-equivalent" for LSH), and mask_fraction.
    """
    device = torch.device(device)
    if seq_len > model_cfg.max_position_embeddings:
        model_cfg = model_cfg.replace(max_position_embeddings=seq_len)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = PretrainingModel(model_cfg).to(device)
        batch = flops_batch(model_cfg, batch_size, seq_len, mask_fraction, seed, device)
        by_op = count_step_flops(model, batch, device, precision)
    del model, batch
    if device.type == "cuda":  # a runner measures before training: leave the memory to the arm
        torch.cuda.empty_cache()
    total = sum(by_op.values())
    fraction = max(1, round(mask_fraction * seq_len)) / seq_len
    analytic = flops_per_token(model_cfg, seq_len, fraction)
    return {"flops_per_step": float(total), "flops_per_token": total / (batch_size * seq_len),
            "flops_per_token_analytic": analytic["flops_per_token"], "flops_label": analytic["flops_label"],
            "mask_fraction": fraction, "flops_by_op": by_op}


_CACHE: dict[tuple, dict] = {}


def measured_flops_cached(model_cfg: ModelConfig, batch_size: int, seq_len: int, device: str | torch.device = "cpu",
                          mask_fraction: float = 0.15) -> dict:
    """`measured_flops`, measured once per (config, shape, device, mask fraction) per process:
    the count does not depend on the weights or the seed."""
    key = (model_cfg.to_json(), batch_size, seq_len, str(torch.device(device)), mask_fraction)
    if key not in _CACHE:
        _CACHE[key] = measured_flops(model_cfg, batch_size, seq_len, device, mask_fraction)
    return {**_CACHE[key], "flops_by_op": dict(_CACHE[key]["flops_by_op"])}


def step_flops(model_cfg: ModelConfig, batch_size: int, seq_len: int, device: str | torch.device = "cpu",
               mask_fraction: float = 0.15, grad_accum: int = 1) -> dict:
    """The measured FLOPs of one optimizer step (`measured_flops_cached` at the step's batch
    shape and mask fraction, times its micro-batches). `flops_per_step` covers the whole
    step: with torchrun, every rank's share of the batch."""
    m = measured_flops_cached(model_cfg, batch_size, seq_len, device, mask_fraction)
    return {**m, "flops_per_step": m["flops_per_step"] * grad_accum}
