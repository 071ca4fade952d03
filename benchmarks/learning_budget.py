"""How long must a model train before its losses mean something? One arm, with a cheap
held-out MLM curve (`--points` evaluations on 512 examples) printed as it trains, then one
full evaluation: MLM accuracy against the most-frequent-token rate (the unigram stage),
NSP/SOP accuracy against chance with Wilson intervals.

    python benchmarks/learning_budget.py --corpus ../shared/data/kowiki --size mini --steps 600 --points 6

`--norm`, `--layers`, `--hidden`, `--lr` (default: the width rule), `--warmup`, `--mlm-bias`,
`--beta2`, `--eps`, `--clip`, `--weight-decay`, `--dropout`, `--batch-size`, `--seq-len` and
`--vocab-size` are the recipe's knobs. Rows are appended as JSON lines to --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.optim import lr_for_width
from core.stats import wilson
from core.train import TrainConfig, Trainer
from variants import get_config, get_variant


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus"), p.add_argument("--variant", default="bert"), p.add_argument("--size", default="mini")
    p.add_argument("--layers", type=int), p.add_argument("--hidden", type=int), p.add_argument("--norm"), p.add_argument("--dropout", type=float)
    p.add_argument("--sentence-task", default="sop"), p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--seq-len", type=int, default=128), p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, help="peak rate (default: the width rule, core.optim.lr_for_width)")
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--mlm-bias", choices=["unigram", "zero"], default="unigram")
    p.add_argument("--beta2", type=float, default=0.999), p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--clip", type=float, default=1.0), p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--coverage", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=600), p.add_argument("--points", type=int, default=6)
    p.add_argument("--every", type=int, default=0, help="a full evaluation (NSP/SOP included) every N steps")
    p.add_argument("--threads", type=int, default=0), p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/learning_budget.jsonl")
    return p.parse_args()


def accuracy_cell(scores: dict, task: str) -> str:
    acc, n = scores.get(f"eval_{task}_acc"), scores.get(f"eval_{task}_n") or 0
    if acc is None:
        return "–"
    lo, hi = wilson(round(acc * n), n)
    return f"{100 * acc:5.1f}% [{100 * lo:.1f}–{100 * hi:.1f}] n={n}"


def main() -> None:
    a = parse()
    if a.threads:
        torch.set_num_threads(a.threads)
    data = build_dataset(DataConfig(**{**get_variant(a.variant).data, "vocab_size": a.vocab_size,
                                       "max_length": a.seq_len, "sentence_task": a.sentence_task,
                                       "character_coverage": a.coverage}), a.corpus)
    overrides = {"vocab_size": a.vocab_size, "max_position_embeddings": max(512, a.seq_len)}
    overrides.update({k: v for k, v in (("num_layers", a.layers), ("hidden_size", a.hidden), ("norm", a.norm),
                                                   ("hidden_dropout", a.dropout), ("attention_dropout", a.dropout))
                      if v is not None})
    if a.hidden:
        overrides["num_heads"] = max(1, a.hidden // 64)
    torch.manual_seed(a.seed)
    model = PretrainingModel(get_config(a.variant, a.size, **overrides))
    lr = a.lr or lr_for_width(model.cfg.hidden_size)
    cfg = TrainConfig(batch_size=a.batch_size, lr=lr, warmup=a.warmup, max_steps=a.steps, eval_points=a.points,
                      eval_every=a.every, seed=a.seed, mlm_bias=a.mlm_bias, betas=(0.9, a.beta2), eps=a.eps,
                      clip_norm=a.clip, weight_decay=a.weight_decay)
    print(f"{a.variant}-{a.size} {overrides}, {a.seq_len}x{a.batch_size}, lr {lr:g}, warmup {a.warmup}, "
          f"mlm_bias {a.mlm_bias}, beta2 {a.beta2}, eps {a.eps:g}, clip {a.clip}, {data.corpus_name}", flush=True)
    print("step  tokens   train_s  MLM loss  MLM acc (curve points: 512 held-out examples)", flush=True)
    shown = [0]

    def show(trainer: Trainer) -> None:
        for e in trainer.evals[shown[0]:]:
            full = "" if e.get("curve") else (f"  (all examples; majority {100 * e['eval_mlm_majority_acc']:.1f}%) "
                                              f"NSP {accuracy_cell(e, 'nsp')}  SOP {accuracy_cell(e, 'sop')}")
            gap = e.get("eval_mlm_unigram_gap")
            vs = f"  vs unigram {gap:+.3f} ± {1.96 * e['eval_mlm_unigram_gap_se']:.3f}" if gap is not None else ""
            print(f"{e['step']:5d} {e['tokens']:8d} {e['seconds']:7.0f}   {e['eval_mlm_loss']:.3f}   "
                  f"{100 * e['eval_mlm_acc']:5.1f}%{vs}{full}", flush=True)
        shown[0] = len(trainer.evals)

    t0 = time.perf_counter()
    result = Trainer(model, data, cfg, progress_bar=False, on_step=show).train(resume=False)
    f = result.final_eval
    gap = f"{f['eval_mlm_unigram_gap']:+.3f} ± {1.96 * f['eval_mlm_unigram_gap_se']:.3f}"
    print(f"final (every held-out example), {time.perf_counter() - t0:.0f}s in all: MLM loss {f['eval_mlm_loss']:.3f} "
          f"(unigram entropy {f['eval_mlm_unigram_entropy']:.3f}, gap {gap}), "
          f"acc {100 * f['eval_mlm_acc']:.1f}% vs majority {100 * f['eval_mlm_majority_acc']:.1f}%; "
          f"NSP {accuracy_cell(f, 'nsp')}; SOP {accuracy_cell(f, 'sop')}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        summary = {k: v for k, v in f.items() if not isinstance(v, list | str)}
        fh.write(json.dumps({"args": vars(a), "curve": result.evals, "final": summary}) + "\n")


if __name__ == "__main__":
    main()
