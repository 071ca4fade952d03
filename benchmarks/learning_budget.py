"""How long must a model train before its losses mean something? One arm, evaluated every
N steps on the full held-out sets: MLM accuracy against the most-frequent-token rate (the
unigram stage), NSP/SOP accuracy against chance with Wilson intervals.

    python benchmarks/learning_budget.py --corpus ../shared/data/kowiki --size mini --steps 600 --every 100

Prints one row per evaluation (step, tokens, seconds, MLM loss/acc, majority rate, NSP
and SOP accuracy with 95% intervals) and writes them as JSON lines to --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.stats import wilson
from core.train import TrainConfig, Trainer
from variants import get_config, get_variant


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus"), p.add_argument("--variant", default="bert"), p.add_argument("--size", default="mini")
    p.add_argument("--sentence-task", default="sop"), p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--seq-len", type=int, default=128), p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3), p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--steps", type=int, default=600), p.add_argument("--every", type=int, default=100)
    p.add_argument("--out", default="runs/learning_budget.jsonl")
    a = p.parse_args()
    data = build_dataset(DataConfig(**{**get_variant(a.variant).data, "vocab_size": a.vocab_size,
                                       "max_length": a.seq_len, "sentence_task": a.sentence_task}), a.corpus)
    torch.manual_seed(0)
    model = PretrainingModel(get_config(a.variant, a.size, vocab_size=a.vocab_size,
                                        max_position_embeddings=max(512, a.seq_len)))
    cfg = TrainConfig(batch_size=a.batch_size, lr=a.lr, warmup=a.warmup, max_steps=a.steps, eval_every=a.every)
    t0 = time.perf_counter()
    result = Trainer(model, data, cfg, progress_bar=False).train(resume=False)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{a.variant}-{a.size}, {a.seq_len}x{a.batch_size}, lr {a.lr}, V={a.vocab_size}, {data.corpus_name}; "
          f"{time.perf_counter() - t0:.0f}s in all")
    print("step  tokens    train_s  MLM loss  MLM acc  majority  NSP acc [95%]        SOP acc [95%]")
    with open(out, "a") as fh:
        for e in result.evals:
            cells = []
            for task in ("nsp", "sop"):
                acc, n = e.get(f"eval_{task}_acc"), e.get(f"eval_{task}_n") or 0
                cells.append("–" if acc is None else f"{100 * acc:5.1f} [{100 * wilson(round(acc * n), n)[0]:.1f}–"
                             f"{100 * wilson(round(acc * n), n)[1]:.1f}] n={n}")
            print(f"{e['step']:5d} {e['tokens']:8d} {e['seconds']:8.0f}  {e['eval_mlm_loss']:.3f}    "
                  f"{100 * e['eval_mlm_acc']:5.1f}%   {100 * e['eval_mlm_majority_acc']:5.1f}%   {cells[0]:20s} {cells[1]}")
            fh.write(json.dumps({"args": vars(a), **e}) + "\n")


if __name__ == "__main__":
    main()
