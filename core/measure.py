"""Measurements: speed, memory, parameters and a cost model, for any model and batch shape.

- Speed: warm-up steps, then timed steps with device synchronisation; median/min/max
  seconds of a full training step (forward, backward, AdamW), training and inference
  tokens per second (non-padding tokens).
- Memory, three figures:
  * `peak_mem_bytes` on CUDA: peak allocated during one training step, minus what was
    allocated before it (`torch.cuda.max_memory_allocated`);
  * `peak_mem_bytes` on CPU: the peak resident memory of an isolated subprocess that runs
    only this measurement, minus its resident memory just before the measured step
    (Linux's VmHWM, reset through /proc/self/clear_refs; ru_maxrss elsewhere);
  * `saved_bytes`, both devices: bytes of the tensors autograd saves for backward in one
    step, unique storages, parameters excluded (they are counted as parameters). It is
    deterministic, so tests can rely on it. Reversible layers keep their output outside
    autograd (`ctx.y`); it is added explicitly.
- Cost model: analytic FLOPs per token beside the measured time give utilisation against
  the device's measured matmul peak. LSH FLOPs are "dense-equivalent": the dot products
  LSH computes (2 x bucket_size keys per query per hash round), priced as dense matmuls,
  which they are not (sorting and gathering are extra).
- Out-of-memory is a result (`status: "oom"`), never an exception.
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from core.config import ModelConfig
from core.device import autocast, is_oom, pick_device, synchronize
from core.model import IGNORE_INDEX, PretrainingModel
from core.optim import adamw


def make_batch(cfg: ModelConfig, batch_size: int, seq_len: int, mask_prob: float = 0.15,
               seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """A synthetic pretraining batch: speed and memory do not depend on token values."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (batch_size, seq_len), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    picked = torch.rand(batch_size, seq_len, generator=g) < mask_prob
    picked[:, 0] = True  # at least one prediction per row
    labels[picked] = ids[picked]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mlm_labels": labels}
    if cfg.type_vocab_size:
        types = torch.zeros_like(ids)
        types[:, seq_len // 2:] = 1 if cfg.type_vocab_size > 1 else 0
        batch["token_type_ids"] = types
    if cfg.sentence_head:
        batch["sentence_labels"] = torch.randint(0, 2, (batch_size,), generator=g)
    return {k: v.to(device) for k, v in batch.items()}


def _train_step(model: PretrainingModel, opt: torch.optim.Optimizer, batch: dict, device: torch.device) -> None:
    opt.zero_grad(set_to_none=True)
    with autocast(device):
        loss = model(**batch).loss
    loss.backward()
    opt.step()


def saved_tensor_bytes(model: PretrainingModel, batch: dict, device: torch.device | None = None) -> int:
    device = device or next(model.parameters()).device
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            storages[st.data_ptr()] = st.nbytes()
        return t

    model.train()
    model.encoder.reversible_saved_bytes = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device):
        loss = model(**batch).loss
    extra = model.encoder.reversible_saved_bytes
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values()) + extra


def measure_speed(model: PretrainingModel, batch: dict, device: torch.device, warmup: int = 2,
                  steps: int = 5) -> dict:
    tokens = int(batch["attention_mask"].sum())
    opt = adamw(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for i in range(warmup + steps):
        synchronize(device)
        t0 = time.perf_counter()
        _train_step(model, opt, batch, device)
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.eval()
    infer = []
    with torch.no_grad():
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
        "infer_tokens_per_s": tokens / statistics.median(infer), "timed_steps": steps, "warmup_steps": warmup,
    }


# -- peak memory -----------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_in_process(cfg: ModelConfig, batch_size: int, seq_len: int, device: torch.device) -> dict:
    """Build, create the optimizer state with a tiny step, then measure one full step.

    The warm-up step is tiny on purpose: the allocator keeps freed pages resident, so a
    full-size warm-up would hide the measured step's activations from the RSS peak."""
    import gc

    torch.manual_seed(0)
    model = PretrainingModel(cfg).to(device)
    opt = adamw(model.parameters(), lr=1e-5)
    _train_step(model, opt, make_batch(cfg, 1, min(seq_len, 16), device=device), device)
    opt.zero_grad(set_to_none=True)
    batch = make_batch(cfg, batch_size, seq_len, device=device)
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _train_step(model, opt, batch, device)
        synchronize(device)
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(device) - base, "memory_method": "cuda.max_memory_allocated"}
    base = _rss_bytes()
    exact = _reset_peak_rss()
    _train_step(model, opt, batch, device)
    return {"peak_mem_bytes": max(0, _peak_rss_bytes() - base),
            "memory_method": "subprocess peak RSS (VmHWM)" if exact else "subprocess peak RSS (ru_maxrss)"}


def peak_memory(cfg: ModelConfig, batch_size: int, seq_len: int, device: torch.device,
                memory_limit_bytes: int | None = None, timeout_s: float = 900) -> dict:
    """CUDA: in process. CPU: in a fresh subprocess, so no other allocation pollutes the figure."""
    try:
        if device.type == "cuda":
            return {"status": "ok", **peak_memory_in_process(cfg, batch_size, seq_len, device)}
    except Exception as err:  # noqa: BLE001 - OOM is a result
        if is_oom(err):
            torch.cuda.empty_cache()
            return {"status": "oom", "error": str(err).splitlines()[0], "peak_mem_bytes": None}
        raise
    spec = json.dumps({"config": cfg.to_dict(), "batch_size": batch_size, "seq_len": seq_len,
                       "memory_limit_bytes": memory_limit_bytes})
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run([sys.executable, "-m", "core.memory_worker", spec], capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode in (-9, 137) or "MemoryError" in proc.stderr or "can't allocate memory" in proc.stderr:
        return {"status": "oom", "error": "the measurement process ran out of memory", "peak_mem_bytes": None}
    raise RuntimeError(f"memory measurement failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


# -- cost model -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def matmul_peak_flops(device_str: str) -> float:
    """The device's achievable matmul FLOP/s, measured (bf16 on CUDA, fp32 on CPU)."""
    device = torch.device(device_str)
    n, dtype = (4096, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    reps, t0 = 10, time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flops_per_token(cfg: ModelConfig, seq_len: int, mask_fraction: float = 0.15) -> dict:
    """Analytic training FLOPs per token (3 x forward; recomputation not counted)."""
    H, I, E, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.embedding_size, cfg.vocab_size, cfg.num_layers
    proj = (8 if cfg.attention == "full" else 6) * H * H  # Q,K,V,O or shared QK,V,O
    if cfg.attention == "lsh":
        keys = min(2 * cfg.lsh_bucket_size, seq_len) * cfg.lsh_n_hashes
    else:
        keys = seq_len
    attn = 4 * keys * H
    layer = proj + 4 * H * I + attn
    embed = 2 * E * H if cfg.factorized else 0
    head = mask_fraction * (2 * H * E + 2 * E * V)
    forward = L * layer + embed + head
    return {"flops_per_token": 3 * forward, "attention_flops_per_token": 3 * L * attn,
            "flops_label": "dense-equivalent" if cfg.attention == "lsh" else "exact"}


# -- everything at once -------------------------------------------------------------------------------
def measure(cfg: ModelConfig, batch_size: int, seq_len: int, device: str | torch.device = "auto",
            speed: bool = True, memory: bool = True, warmup: int = 2, steps: int = 5,
            memory_limit_bytes: int | None = None) -> dict[str, Any]:
    """One row of measurements for a config and batch shape; OOM is a status, not a crash."""
    device = pick_device(device) if isinstance(device, str) else device
    if seq_len > cfg.max_position_embeddings:
        cfg = cfg.replace(max_position_embeddings=seq_len)
    row: dict[str, Any] = {"status": "ok", "error": None, "batch_size": batch_size, "seq_len": seq_len,
                           "device": str(device)}
    try:
        torch.manual_seed(0)
        model = PretrainingModel(cfg).to(device)
        row.update({f"params_{k}": v for k, v in model.parameter_counts().items()})
        batch = make_batch(cfg, batch_size, seq_len, device=device)
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
        return {**row, "status": "oom", "error": str(err).splitlines()[0][:300]}
    if memory:
        mem = peak_memory(cfg, batch_size, seq_len, device, memory_limit_bytes)
        if mem.get("status") == "oom":
            return {**row, "status": "oom", "error": mem.get("error"), "peak_mem_bytes": None}
        row.update(peak_mem_bytes=mem["peak_mem_bytes"], memory_method=mem.get("memory_method"))
    return row
