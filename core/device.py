"""Device choice and precision: CUDA when present (bf16 autocast), CPU otherwise (fp32).

Precision is named, not switched on and off: "auto" is bf16 autocast on CUDA and fp32 on
a CPU (where fp32 is both faster and exact); "bf16" asks for bf16 autocast on either, so
that the mixed-precision code path (dtype meetings of bf16 activations with fp32
buffers, masks and indices) can be exercised on a CPU; "fp32" turns autocast off on
either. Master weights, gradients and optimizer state stay fp32 in every case."""
from __future__ import annotations

import contextlib

import torch

from core.errors import first_line
from core.registry import unknown_name_error

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise unknown_name_error("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise unknown_name_error("precision", precision, PRECISIONS)
    return precision


def resolved_precision(device: torch.device, precision: str = "auto") -> str:
    """"fp32" or "bf16": what `precision` means on `device`."""
    if check_precision(precision) == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast where `precision` resolves to bf16 on this device, else a no-op."""
    if resolved_precision(device, precision) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
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
    return {"status": "oom", "error": first_line(err, 300)}


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
    given, text = text, text.strip().upper().removesuffix("B")
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        size = int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise ValueError(f"{given!r} is not a size: give bytes or a number with K, M, G or T (e.g. 16G)")
    return size
