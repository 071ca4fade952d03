"""Subprocess entry point for CPU peak-memory measurement: `python -m core.measure.memory_worker SPEC`.

Runs in a fresh interpreter so that the resident-memory peak belongs to this one
measurement. Prints one JSON line.
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
    from core.measure.memory import peak_memory_in_process
    from core.model import ModelConfig

    cfg = ModelConfig.from_dict(spec["config"])
    try:
        out = peak_memory_in_process(cfg, spec["batch_size"], spec["seq_len"], torch.device("cpu"))
        print(json.dumps({"status": "ok", **out}))
    except Exception as err:  # noqa: BLE001
        oom = oom_result(err)
        if oom is None:
            raise
        print(json.dumps({**oom, "peak_mem_bytes": None}))


if __name__ == "__main__":
    main()
