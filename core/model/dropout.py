"""Dropout that is cheap on CPU: masks from 16 random bits per element, kept as bools.

A profile of a `bert` mini training step on CPU puts `bernoulli_` (dropout masks) at about
a tenth of the step: torch draws one float per element and stores the mask as floats.
Here one 64-bit draw feeds four elements, the keep test is an integer comparison and the
mask saved for backward is 1 byte per element instead of 4.

The keep probability is p rounded to a multiple of 1/65536 (0.1 -> 0.100006) and the
scale is the exact inverse of that keep probability, so E[dropout(x)] = x holds exactly;
only the random stream differs from `nn.Dropout`. CUDA keeps torch's fused kernel, which
is already fast, and `fast=False` restores torch's dropout anywhere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A bool keep-mask with P(keep) = 1 - round(p * 65536) / 65536, and its exact scale."""
    n = shape.numel()
    drop_levels = round(p * _LEVELS)
    bits = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    r = bits.view(torch.int16)[:n].view(shape)  # uniform on [-32768, 32767]
    return r >= drop_levels - _LEVELS // 2, _LEVELS / (_LEVELS - drop_levels)


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return (x * keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool, fast: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if not fast or x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, True)  # CUDA's fused kernel; inductor fuses its own RNG
    keep, scale = keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, keep, scale)


class Dropout(nn.Module):
    """`nn.Dropout` with the cheap CPU path; `fast=False` is torch's dropout."""

    def __init__(self, p: float, fast: bool = True):
        super().__init__()
        self.p, self.fast = p, fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.fast)

    def extra_repr(self) -> str:
        return f"p={self.p}, fast={self.fast}"
