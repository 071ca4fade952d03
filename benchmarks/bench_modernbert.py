"""Our `modernbert` training step beside HF transformers' `ModernBertForMaskedLM` of the same
shape and the same weights, timed in one process (A B A B ..., per-round ratios), at 512
tokens (batch 8) and 2,048 (batch 2), with padding in every batch (one row at 60%).

    PYTHONPATH=. python benchmarks/bench_modernbert.py [--rounds 7] [--lengths 512,2048]
    PYTHONPATH=. python benchmarks/bench_modernbert.py --device cuda --bf16 --json out.json   # gpu_check.sh

Both sides: mini (4 layers x 256, V = 8,000), GeGLU, bias-free pre-norm, RoPE, a 128-token
window with a global layer every third, no dropout, AdamW (the Trainer's). HF's ModernBERT
runs SDPA with its padding and window masks (no flash-attn on a CPU) and decodes every
position (its default); ours predicts the masked 15% only, runs the encoder unpadded and its
local layers with the banded kernel (flex on CUDA).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from interleave import fmt, interleave, ratio  # noqa: E402

from core.device import autocast, device_name, synchronize  # noqa: E402
from core.optim import adamw  # noqa: E402
from variants import build_model  # noqa: E402

V, SIZE = 8000, "mini"


def batch(B: int, T: int, device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(T)
    ids = torch.randint(5, V, (B, T), generator=g)
    mask = torch.ones_like(ids)
    mask[0, int(0.6 * T):] = 0  # one row at 60%: padding, as real batches have
    labels = torch.full_like(ids, -100)
    picked = (torch.rand(B, T, generator=g) < 0.15) & mask.bool()
    labels[picked] = ids[picked]
    return {k: v.to(device) for k, v in {"input_ids": ids, "attention_mask": mask, "mlm_labels": labels}.items()}


def make_step(model, loss_fn, device, precision: str):
    opt = adamw(model.parameters(), lr=1e-4)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        opt.step()
        synchronize(device)

    step()
    return step


def sides(T: int, B: int, device, precision: str) -> dict:
    from core.interop import to_hf

    torch.manual_seed(0)
    ours = build_model("modernbert", size=SIZE, vocab_size=V, max_position_embeddings=max(512, T)).to(device)
    ours.unpad = True
    hf = to_hf(ours.cpu()).to(device)
    ours.to(device)
    b = batch(B, T, device)
    return {"ours": make_step(ours, lambda: ours(**b).loss, device, precision),
            "hf": make_step(hf, lambda: hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                         labels=b["mlm_labels"]).loss, device, precision)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--lengths", default="512,2048")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()
    device, precision = torch.device(args.device), "bf16" if args.bf16 else "fp32"
    out = {"device": device_name(device), "precision": precision, "threads": torch.get_num_threads(), "lengths": {}}
    for T in (int(x) for x in args.lengths.split(",")):
        B = max(1, 4096 // T)
        times = interleave(sides(T, B, device, precision), rounds=args.rounds)
        r = ratio(times, "hf", "ours")
        toks = {name: B * T / sorted(t)[len(t) // 2] for name, t in times.items()}
        out["lengths"][T] = {"batch": B, "tokens_per_s": toks, "ratio": r}
        print(f"{T} tokens x {B}: ours {toks['ours']:,.0f} tok/s, HF ModernBERT {toks['hf']:,.0f} tok/s; "
              f"ours / HF {fmt(r)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
