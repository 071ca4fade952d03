"""The variants x sequence-length table: tokens/s and memory by both methods, our bert
beside HF's BertForPreTraining in the same run (constant tokens per batch).

    python benchmarks/seq_table.py [--seq-lens 128,512,2048,8192] [--tokens 8192] [--out runs/seq_table]

Writes bench.jsonl, bench.csv, report.md and plots through the ablations runner's bench,
then adds HF rows measured in this process (speed and saved bytes; HF's peak memory is
measured in the same isolated way by the subprocess worker only for our models).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console

from ablations.config import RunConfig
from ablations.report import render_report
from ablations.run.bench import run_bench
from ablations.rundir import append_row

VARIANTS = "bert,albert,roberta,reformer,albert-reformer"


def hf_row(seq_len: int, batch: int, vocab: int) -> dict:
    import transformers

    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=1024, max_position_embeddings=max(512, seq_len))
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(cfg)
    ids = torch.randint(5, vocab, (batch, seq_len))
    labels = torch.full_like(ids, -100)
    picked = torch.rand(batch, seq_len) < 0.15
    labels[picked] = ids[picked]
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                  labels=labels, next_sentence_label=torch.zeros(batch, dtype=torch.long))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    try:
        for i in range(4):
            t0 = time.perf_counter()
            opt.zero_grad()
            model(**kwargs).loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
    except RuntimeError as err:
        return {"variant": "hf-bert", "seq_len": seq_len, "batch_size": batch, "status": "oom", "error": str(err)[:200]}
    return {"variant": "hf-bert", "seq_len": seq_len, "batch_size": batch, "status": "ok", "mode": "speed",
            "tokens_per_s": batch * seq_len / statistics.median(times), "size": "mini", "device": "cpu"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seq-lens", default="128,512,2048,8192")
    p.add_argument("--variants", default=VARIANTS)
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--out", default="runs/seq_table")
    p.add_argument("--memory-limit", default="18G", help="address-space cap: what does not fit is recorded as oom")
    args = p.parse_args()
    from core.device import limit_memory, parse_bytes

    limit_memory(parse_bytes(args.memory_limit))
    out = Path(args.out)
    seq_lens = [int(s) for s in args.seq_lens.split(",")]
    console = Console()
    run_bench(args.variants.split(","), seq_lens, "both", "mini", args.tokens, RunConfig(device="cpu"), out, console)
    for T in seq_lens:
        row = hf_row(T, max(1, args.tokens // T), 8000)
        append_row(out / "bench.jsonl", row)
        console.print(json.dumps({k: row.get(k) for k in ("variant", "seq_len", "status", "tokens_per_s")}))
    render_report(out, console)


if __name__ == "__main__":
    main()
