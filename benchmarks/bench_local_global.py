"""Where ModernBERT's local/global attention starts to pay against full attention (issue 32):
`modernbert` as it is (a 128-token window, every third layer global) against the same model
with every layer global (`global_every=1`), so that the attention layout is the only
difference (`bert` differs in dropout, norms, positions and heads as well). At each length,
at a constant number of tokens per batch: peak memory and the bytes saved for backward in a
fresh process (as `bench memory` measures them), and the training step timed in rotating
rounds, whose per-round ratio is the figure (`interleave`).

    PYTHONPATH=. python benchmarks/bench_local_global.py                  # 512 to 8,192 tokens, mini
    PYTHONPATH=. python benchmarks/bench_local_global.py --lengths 2048,4096 --rounds 5 --json out.json
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

from core.device import pick_device  # noqa: E402
from core.measure import make_batch, measure, train_step  # noqa: E402
from core.model import PretrainingModel  # noqa: E402
from core.optim import adamw  # noqa: E402
from variants import get_config  # noqa: E402


def one_length(T: int, tokens: int, size: str, rounds: int, device: torch.device) -> dict:
    B = max(1, tokens // T)
    common = dict(size=size, vocab_size=8000, max_position_embeddings=max(512, T))
    cfgs = {"local/global": get_config("modernbert", **common), "full": get_config("modernbert", global_every=1, **common)}
    row: dict = {"seq_len": T, "batch_size": B}
    for name, cfg in cfgs.items():
        m = measure(cfg, B, T, device, speed=False, memory=True)
        row[name] = {"status": m["status"], "peak_mem_bytes": m.get("peak_mem_bytes"), "saved_bytes": m.get("saved_bytes")}
    torch.manual_seed(0)
    models = {n: PretrainingModel(c).to(device) for n, c in cfgs.items()}
    opts = {n: adamw(m.parameters(), lr=1e-5) for n, m in models.items()}
    batch = make_batch(cfgs["full"], B, T, device=device)
    times = interleave({n: (lambda n=n: train_step(models[n], opts[n], batch, device)) for n in models}, rounds=rounds)
    ratios = [a / b for a, b in zip(times["local/global"], times["full"])]
    row["step_s"] = {n: statistics.median(v) for n, v in times.items()}
    row["time_ratio"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    row["kernels_ran"] = models["local/global"].kernels_ran()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="512,1024,2048,4096,8192")
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = pick_device(args.device)
    rows = []
    for T in (int(t) for t in args.lengths.split(",")):
        row = one_length(T, args.tokens_per_batch, args.size, args.rounds, device)
        r, mem = row["time_ratio"], [row[n]["peak_mem_bytes"] for n in ("local/global", "full")]
        peak = f"peak memory x{mem[0] / mem[1]:.2f}" if all(mem) else "peak memory: not measured"
        print(f"{T:>6} x {row['batch_size']:<3} local/global vs full: step time x{r['median']:.2f} "
              f"(rounds {r['min']:.2f}-{r['max']:.2f}), {peak}", flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
