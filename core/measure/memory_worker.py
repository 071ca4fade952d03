"""Subprocess entry point for CPU peak-memory measurement: `python -m core.measure.memory_worker SPEC`.

Runs in a fresh interpreter so that the resident-memory peak belongs to this one
measurement, and so do the bytes saved for backward (`saved_bytes`, measured after the
peak): under `--memory-limit` (an address-space cap) a long sweep in one process ran out of
address space that earlier, larger lengths had left mapped, and recorded lengths that fit as
out of memory. Prints one JSON line.
"""
from __future__ import annotations

import json
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("memory_limit_bytes"):
        import resource

        limit = int(spec["memory_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    from core.device import oom_result
    from core.measure.batch import make_batch
    from core.measure.memory import peak_memory_in_process, saved_tensor_bytes
    from core.model import ModelConfig, PretrainingModel

    cfg = ModelConfig.from_dict(spec["config"])
    try:
        out = peak_memory_in_process(cfg, spec["batch_size"], spec["seq_len"], torch.device("cpu"))
        if spec.get("saved_bytes"):
            torch.manual_seed(0)
            model = PretrainingModel(cfg)
            out["saved_bytes"] = saved_tensor_bytes(model, make_batch(cfg, spec["batch_size"], spec["seq_len"]))
        print(json.dumps({"status": "ok", **out}))
    except Exception as err:  # noqa: BLE001
        oom = oom_result(err)
        if oom is None:
            raise
        print(json.dumps({**oom, "peak_mem_bytes": None}))


if __name__ == "__main__":
    main()
