"""bench: memory and speed against sequence length, without training; one row per
(variant, length) in bench.jsonl.

Lengths run in ascending order per variant, so that "out of memory at T" can skip only
longer lengths. Such a skipped row is marked `skipped` and is not final: a re-run with
other lengths measures it. A measured oom is a result; an exception is an error, which
`run_bench` returns so that the CLI exits non-zero.
"""
from __future__ import annotations

from pathlib import Path

from ablations.config import RunConfig
from ablations.rows import BenchRow
from ablations.rundir import BENCH, append_row, read_bench
from core.device import device_name, oom_result, pick_device
from core.measure import measure
from variants import get_config, get_variant

KEPT = ("status", "error", "tokens_per_s", "infer_tokens_per_s", "peak_mem_bytes", "saved_bytes", "step_s_median",
        "utilisation", "flops_label", "memory_method", "params_unique")


def _finished(path: Path) -> dict[tuple, BenchRow]:
    return {(r.variant, r.seq_len, r.batch_size, r.mode, r.size, r.device): r
            for r in read_bench(path) if r.status == "ok" or (r.status == "oom" and not r.skipped)}


def _measure_row(row: dict, variant: str, size: str, T: int, B: int, mode: str, opts: RunConfig, device) -> None:
    try:
        cfg = get_config(variant, size, vocab_size=opts.vocab_size or 8000, max_position_embeddings=max(512, T))
        m = measure(cfg, B, T, device, speed=mode in ("speed", "both"), memory=mode in ("memory", "both"),
                    warmup=1, steps=1 if opts.quick else 3, memory_limit_bytes=opts.memory_limit_bytes,
                    compile=opts.compile)
        row.update({k: m.get(k) for k in KEPT})
    except Exception as err:  # noqa: BLE001 - a failed length is a result; the sweep goes on
        row.update(oom_result(err) or {"status": "error", "error": f"{type(err).__name__}: {err}"[:600]})


def run_bench(variants: tuple[str, ...] | list[str], seq_lens, mode: str, size: str, tokens_per_batch: int,
              opts: RunConfig, out: Path, console, ablation: str | None = None) -> list[str]:
    """Measure every (variant, length); returns the errors, one line each."""
    out.mkdir(parents=True, exist_ok=True)
    path, device = out / BENCH, pick_device(opts.device)
    done, errors = _finished(path), []
    for v in variants:
        get_variant(v)  # fail early, with the valid names
    for v in variants:
        oom_at = None
        for T in sorted(set(seq_lens)):
            B = max(1, tokens_per_batch // T)
            key = (v, T, B, mode, size, device_name(device))
            if key in done:
                console.print(f"{v} @ {T}: measured earlier ({done[key].status}), skipped")
                continue
            fields = {"ablation": ablation, "variant": v, "size": size, "seq_len": T, "batch_size": B, "mode": mode,
                      "device": device_name(device), "status": "ok", "error": None, "tokens_per_s": None,
                      "infer_tokens_per_s": None, "peak_mem_bytes": None, "saved_bytes": None}
            if oom_at is not None:
                fields.update(status="oom", skipped=True, error=f"skipped: out of memory already at {oom_at} tokens")
            else:
                _measure_row(fields, v, size, T, B, mode, opts, device)
            row = BenchRow.from_json(fields)
            if oom_at is None:
                oom_at = T if row.status == "oom" else None
            append_row(path, row)
            if row.status == "error":
                errors.append(f"{v} @ {T}: {row.error}")
            tps = f"{row.tokens_per_s:,.0f} tok/s" if row.tokens_per_s else ""
            mem = f"{row.peak_mem_bytes / 2**20:,.0f} MiB peak" if row.peak_mem_bytes else ""
            console.print(f"{v} @ {T} x {B}: {row.status} {tps} {mem}")
    return errors
