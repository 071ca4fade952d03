"""Unpadding (MosaicBERT, ModernBERT): pad tokens never enter the linear layers.

A batch padded to its longest row spends the projections, the feed-forward layers and the
layer norms on pad positions whose outputs nothing reads. On Korean Wikipedia segment
pairs at 128 tokens that is about 10% of every token-wise FLOP (16% for full-sentence
packing; `benchmarks/bench_train_step.py` measures it). Unpadded, the encoder runs on the
N real tokens packed as one row, (1, N, H) (a row, not a matrix: reformer-pytorch's
reversible blocks split their two streams along dim 2). Attention alone needs the (B, T)
layout (SDPA's key mask), so the full attention kinds scatter their projections into it and
gather their output back before the output projection; CPU and CUDA alike, no varlen
kernel needed. LSH attention does not pack (`LSHSelfAttention.packs`).

Every token-wise operation then computes the same function of the same inputs, so the
real tokens' hidden states equal the padded path's (tested to float tolerance); the pad
positions of the returned hidden states are zeros instead of values nothing reads.
In training, dropout draws its masks for N tokens instead of B x T, so a run with
unpadding follows another random trajectory than one without, equally likely.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a (B, T) batch sit in its flattened B * T positions."""

    index: torch.Tensor   # (N,) int64 flat positions of the real tokens, in row order
    batch: int
    length: int

    @staticmethod
    def from_mask(mask: torch.Tensor) -> Packing:
        B, T = mask.shape
        return Packing(mask.reshape(-1).nonzero().squeeze(1), B, T)

    @property
    def tokens(self) -> int:
        return self.index.numel()

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (1, N, D): the real tokens only."""
        return x.reshape(self.batch * self.length, -1).index_select(0, self.index)[None]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(1, N, D) -> (B, T, D), zeros at the pad positions."""
        x = x.reshape(self.tokens, -1)
        out = x.new_zeros(self.batch * self.length, x.shape[-1])
        return out.index_copy(0, self.index, x).view(self.batch, self.length, -1)
