"""Memory, three figures.

- `peak_mem_bytes` on CUDA: peak allocated during one training step, minus what was
  allocated before it (`torch.cuda.max_memory_allocated`);
- `peak_mem_bytes` on CPU: the peak resident memory of an isolated subprocess that runs
  only this measurement, minus its resident memory just before the measured step
  (Linux's VmHWM, reset through /proc/self/clear_refs; ru_maxrss elsewhere);
- `saved_bytes`, both devices: bytes of the tensors autograd saves for backward in one
  step, unique storages, parameters excluded (they are counted as parameters). It is
  deterministic, so tests can rely on it. Reversible layers keep their output outside
  autograd (`ctx.y`); it is added explicitly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from core.device import autocast, is_oom, oom_result, synchronize
from core.measure.batch import make_batch, train_step
from core.model import ModelConfig, PretrainingModel
from core.optim import adamw


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
    train_step(model, opt, make_batch(cfg, 1, min(seq_len, 16), device=device), device)
    opt.zero_grad(set_to_none=True)
    batch = make_batch(cfg, batch_size, seq_len, device=device)
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        train_step(model, opt, batch, device)
        synchronize(device)
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(device) - base, "memory_method": "cuda.max_memory_allocated"}
    base = _rss_bytes()
    exact = _reset_peak_rss()
    train_step(model, opt, batch, device)
    return {"peak_mem_bytes": max(0, _peak_rss_bytes() - base),
            "memory_method": "subprocess peak RSS (VmHWM)" if exact else "subprocess peak RSS (ru_maxrss)"}


def peak_memory(cfg: ModelConfig, batch_size: int, seq_len: int, device: torch.device,
                memory_limit_bytes: int | None = None, timeout_s: float = 900, saved_bytes: bool = False) -> dict:
    """CUDA: in process. CPU: in a fresh subprocess, so no other allocation pollutes the figure
    (with `saved_bytes`, the subprocess measures the bytes saved for backward too)."""
    try:
        if device.type == "cuda":
            return {"status": "ok", **peak_memory_in_process(cfg, batch_size, seq_len, device)}
    except Exception as err:  # noqa: BLE001 - OOM is a result
        if is_oom(err):
            torch.cuda.empty_cache()
            return {**oom_result(err), "peak_mem_bytes": None}
        raise
    spec = json.dumps({"config": cfg.to_dict(), "batch_size": batch_size, "seq_len": seq_len,
                       "memory_limit_bytes": memory_limit_bytes, "saved_bytes": saved_bytes})
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run([sys.executable, "-m", "core.measure.memory_worker", spec], capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode in (-9, 137) or "MemoryError" in proc.stderr or "can't allocate memory" in proc.stderr:
        return {"status": "oom", "error": "the measurement process ran out of memory", "peak_mem_bytes": None}
    raise RuntimeError(f"memory measurement failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


