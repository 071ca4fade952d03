"""Long inputs side by side (issue 33): `bert` (full attention), `bert-bigbird` (block-sparse)
and `bert-local` (a 128-token window in every layer) at one length, --size mini, in one run:
peak memory of a training step (each in its own subprocess, as `bench memory` measures it),
the bytes saved for backward, and the training step's time, timed in rounds (A B C, B C A, ...)
so that the per-round ratios cancel the load of a shared machine. Prints each sparse
variant's ratio to `bert` and the kernel its attention ran (the row's `attention_kernel`).

    PYTHONPATH=. python benchmarks/bench_long.py                      # 8,192 tokens, 3 rounds
    PYTHONPATH=. python benchmarks/bench_long.py --length 4096 --rounds 5 --json out.json
    PYTHONPATH=. python benchmarks/bench_long.py --device cuda        # flex_attention on a GPU

The issue's bar: at 8,192 tokens on a 2-core CPU, bert-bigbird and bert-local at most half of
bert's peak memory and step time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from interleave import interleave  # noqa: E402

from core.device import pick_device, synchronize  # noqa: E402
from core.measure import make_batch, peak_memory, saved_tensor_bytes, train_step  # noqa: E402
from core.model import PretrainingModel  # noqa: E402
from core.optim import adamw  # noqa: E402
from variants import get_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--variants", default="bert,bert-bigbird,bert-local")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = pick_device(args.device)
    T, B = args.length, max(1, args.tokens_per_batch // args.length)
    names = args.variants.split(",")
    configs = {n: get_config(n, args.size, vocab_size=8000, max_position_embeddings=max(512, T)) for n in names}
    out: dict[str, dict] = {n: {} for n in names}
    print(f"{T:,} tokens x {B}, {args.size}, {device}, {torch.get_num_threads()} threads", flush=True)
    for n, cfg in configs.items():  # peak memory first: each in a fresh process, nothing else alive
        out[n].update(peak_memory(cfg, B, T, device))
        print(f"  {n}: peak {out[n].get('peak_mem_bytes') or 0:,} bytes ({out[n].get('status')})", flush=True)
    steps, models = {}, {}
    for n, cfg in configs.items():
        torch.manual_seed(0)
        model = PretrainingModel(cfg).to(device).train()
        opt, batch = adamw(model.parameters(), lr=1e-5), make_batch(cfg, B, T, device=device)
        out[n]["saved_bytes"] = saved_tensor_bytes(model, batch, device)
        models[n] = model
        steps[n] = (lambda m=model, o=opt, b=batch: (train_step(m, o, b, device), synchronize(device)))
    times = interleave(steps, rounds=args.rounds, warmup=1)
    for n in names:
        out[n]["step_s"] = times[n]
        out[n]["attention_kernel"] = "+".join(k for k, _ in sorted(models[n].kernels_ran().items(),
                                                                   key=lambda kv: -kv[1])) or "sdpa"
    base = names[0]
    for n in names:
        r = out[n]
        line = f"{n:14s} step {statistics.median(r['step_s']):7.2f} s  peak {(r.get('peak_mem_bytes') or 0) / 2**30:6.2f} GiB" \
               f"  saved {r['saved_bytes'] / 2**30:6.2f} GiB  kernel {r['attention_kernel']}"
        if n != base:
            per_round = [a / b for a, b in zip(r["step_s"], out[base]["step_s"])]
            r["time_ratio"] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
            peak, base_peak = r.get("peak_mem_bytes"), out[base].get("peak_mem_bytes")
            r["peak_ratio"] = peak / base_peak if peak and base_peak else None
            r["saved_ratio"] = r["saved_bytes"] / out[base]["saved_bytes"]
            t = r["time_ratio"]
            peak_text = f"{r['peak_ratio']:.2f}" if r["peak_ratio"] is not None else "n/a"
            line += (f"\n{'':14s} vs {base}: step time x{t['median']:.2f} (rounds {t['min']:.2f}-{t['max']:.2f}), "
                     f"peak memory x{peak_text}, saved x{r['saved_ratio']:.2f}")
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"length": T, "batch_size": B, "size": args.size, "device": str(device),
                                               "threads": torch.get_num_threads(), "variants": out}, indent=1))


if __name__ == "__main__":
    main()
