"""`bench`: memory and/or throughput against sequence length, without training."""
from __future__ import annotations

import argparse
from pathlib import Path

from ablations.cli.console import console
from ablations.cli.errors import exit_code


def add_bench(sub, fmt: dict) -> None:
    b = sub.add_parser("bench", help="memory and/or throughput against sequence length, without training", **fmt)
    b.add_argument("mode", choices=["memory", "speed", "both"])
    b.add_argument("--variants", default="bert,reformer,albert-reformer")
    b.add_argument("--seq-lens", default="512,1024,2048,4096", help="comma-separated; measured in ascending order")
    b.add_argument("--size", default="mini")
    b.add_argument("--tokens-per-batch", type=int, default=8192, help="batch = tokens_per_batch // seq_len")
    b.add_argument("--vocab-size", type=int)
    b.add_argument("--device", default="auto")
    b.add_argument("--out", help="default runs/bench-MODE")
    b.add_argument("--memory-limit", help="cap the process's memory, e.g. 16G: longer sequences that do not fit "
                                          "are recorded as oom instead of swapping the machine")
    b.add_argument("--quick", action="store_true", help="one timed step per measurement")
    b.add_argument("--compile", action="store_true", help="time torch.compile'd models (eager fallback with a warning)")
    b.set_defaults(fn=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    from ablations.plan import RunConfig
    from ablations.report import render_report
    from ablations.run.bench import run_bench
    from ablations.rundir import ensure_run_dir
    from core.device import limit_memory, parse_bytes

    seq_lens = int_list(args.seq_lens, "--seq-lens", low=8)
    variants = [v for v in args.variants.split(",") if v]
    if args.tokens_per_batch < 1:
        raise ValueError(f"--tokens-per-batch must be >= 1, got {args.tokens_per_batch}")
    if args.memory_limit:
        try:
            limit = parse_bytes(args.memory_limit)
        except ValueError as err:
            raise ValueError(f"--memory-limit: {err}") from None
        limit_memory(limit)
    config = RunConfig(device=args.device, quick=args.quick, vocab_size=args.vocab_size, compile=args.compile)
    out = Path(args.out or f"runs/bench-{args.mode}")
    ensure_run_dir(out)
    errors = run_bench(variants, seq_lens, args.mode, args.size, args.tokens_per_batch, config, out, console)
    render_report(out, console)
    return exit_code(errors, f"{out}/report.md", console)


def int_list(text: str, flag: str, low: int) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, e.g. 512,1024,2048; got {text!r}") from None
    bad = [v for v in values if v < low]
    if not values or bad:
        raise ValueError(f"{flag} values must be >= {low}; got {text!r}")
    return values
