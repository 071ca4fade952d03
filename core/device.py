"""Device choice and precision: CUDA when present (bf16 autocast), CPU otherwise (fp32)."""
from __future__ import annotations

import contextlib

import torch

from core.registry import unknown_name_error

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise unknown_name_error("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op on CPU, where fp32 is both faster and exact."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_oom(err: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation failure (what a memory limit produces)."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg
                                              or "cannot allocate memory" in msg)


def oom_result(err: BaseException) -> dict[str, str] | None:
    """{"status": "oom", "error": its first line} for an out-of-memory error, None for any
    other: out-of-memory is a result that every measurement and arm records the same way."""
    if not is_oom(err):
        return None
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return {"status": "oom", "error": lines[0][:300]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def limit_memory(max_bytes: int) -> None:
    """Cap this process's address space (Linux): an allocation beyond it fails with an
    error that `is_oom` recognises, so a benchmark records "oom" instead of swapping the
    machine to a halt or being killed. Child processes inherit the cap."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def parse_bytes(text: str) -> int:
    """'16G', '512M', '2000000000' -> bytes."""
    text = text.strip().upper().removesuffix("B")
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
