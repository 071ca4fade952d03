"""Every measurement of one config and batch shape at once, as one row; OOM is a status."""
from __future__ import annotations

from typing import Any

import torch

from core.device import is_oom, oom_result, pick_device
from core.measure.batch import make_batch
from core.measure.cost import flops_per_token, matmul_peak_flops
from core.measure.memory import peak_memory, saved_tensor_bytes
from core.measure.speed import measure_speed
from core.model import ModelConfig, PretrainingModel, compile_model


def measure(cfg: ModelConfig, batch_size: int, seq_len: int, device: str | torch.device = "auto",
            speed: bool = True, memory: bool = True, warmup: int = 2, steps: int = 5,
            memory_limit_bytes: int | None = None, compile: bool = False) -> dict[str, Any]:
    """One row of measurements for a config and batch shape; OOM is a status, not a crash.
    `compile` times the `torch.compile`d model (memory is always measured eagerly)."""
    device = pick_device(device) if isinstance(device, str) else device
    if seq_len > cfg.max_position_embeddings:
        cfg = cfg.replace(max_position_embeddings=seq_len)
    row: dict[str, Any] = {"status": "ok", "error": None, "batch_size": batch_size, "seq_len": seq_len,
                           "device": str(device)}
    # on a CPU the memory worker (a fresh process) measures the saved bytes as well: a sweep
    # under an address-space cap must not fail in this process on what earlier lengths left mapped
    saved_in_worker = memory and device.type == "cpu"
    try:
        torch.manual_seed(0)
        model = PretrainingModel(cfg).to(device)
        if compile:
            compile_model(model)
        row.update({f"params_{k}": v for k, v in model.parameter_counts().items()})
        batch = make_batch(cfg, batch_size, seq_len, device=device)
        if not saved_in_worker:
            row["saved_bytes"] = saved_tensor_bytes(model, batch, device)
        if speed:
            row.update(measure_speed(model, batch, device, warmup, steps))
            cost = flops_per_token(cfg, seq_len)
            peak = matmul_peak_flops(str(device))
            row.update(cost, matmul_peak_flops=peak, utilisation=cost["flops_per_token"] * row["tokens_per_s"] / peak)
        del model, batch
    except Exception as err:  # noqa: BLE001
        if not is_oom(err):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {**row, **oom_result(err)}
    finally:
        release_freed_memory()
    if memory:
        mem = peak_memory(cfg, batch_size, seq_len, device, memory_limit_bytes, saved_bytes=saved_in_worker)
        if mem.get("status") == "oom":
            return {**row, "status": "oom", "error": mem.get("error"), "peak_mem_bytes": None}
        row.update(peak_mem_bytes=mem["peak_mem_bytes"], memory_method=mem.get("memory_method"))
        if saved_in_worker:
            row["saved_bytes"] = mem["saved_bytes"]
    return row


def release_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc's malloc_trim), so that a sweep's next length
    starts with the address space this one used; elsewhere, a no-op."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
