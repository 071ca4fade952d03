"""Sliding-window attention: each token attends to the tokens within `half` positions of it
(ModernBERT's local layers: `local_window` = 128 tokens, 64 on either side, as HF's
`local_attention`), padding keys masked. Three kernels compute the same function:

- `banded`: the sequence cut into blocks of `half` tokens; each query block attends to its
  own and its two neighbouring key blocks (3 x half keys) through one batched SDPA call
  with the exact window as its mask. Time and memory grow as T x half instead of T x T,
  and autograd differentiates it on any device. The CPU's kernel.
- `flex`: `torch.nn.attention.flex_attention` with a block mask, compiled (once per
  shape; the sequence is padded to a multiple of 128 so that few shapes occur, and the
  compile time is kept apart, `KERNEL_TIMES`). The CUDA kernel. In torch 2.13 it has no
  CPU backward ("FlexAttention does not support backward on CPU"), so a CPU trains banded.

Both are the block-sparse kernels of `core.model.blocksparse` (`gather` and `flex`) fed the
window as a `BlockPattern` (`window_pattern`): the one description of which key blocks each
query block attends that BigBird's pattern uses too.
- `dense`: SDPA with the full T x T mask: the reference the other two are tested against,
  and the faster one on a CPU for short sequences, where banded's many small blocks cost
  more than the T x T scores they save (measured on 2 cores, forward and backward: at 128
  tokens with a 16-token window dense takes 3.8 ms and banded 8.2; at 2,048 with 128, dense
  98 ms and banded 21). `auto` on a CPU takes banded from 512 tokens and 12 half-windows on.

A query always attends to itself as well, so a padding query whose window holds only
padding has one key: its output is finite (real tokens never see padding keys, so theirs
is unchanged), and no NaN reaches a gradient through the pads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.model.blocksparse import KERNEL_TIMES, pattern_attention, window_pattern

KERNELS = ("auto", "banded", "flex", "dense")


def kernel_for(requested: str, device: torch.device, dropout_p: float = 0.0, length: int | None = None,
               half: int | None = None) -> str:
    """The kernel that runs for a sequence of `length` and a window of `half`: `auto` is flex
    on CUDA, and on a CPU banded for long sequences and dense for short ones (see the module
    docstring); flex has no attention dropout, so a layer with dropout takes banded."""
    if requested not in KERNELS:
        raise ValueError(f"unknown local attention kernel {requested!r}; choose from {', '.join(KERNELS)}")
    kernel = requested
    if requested == "auto":
        long = length is None or half is None or (length >= 512 and length >= 12 * half)
        kernel = "flex" if torch.device(device).type == "cuda" else "banded" if long else "dense"
    return "banded" if kernel == "flex" and dropout_p > 0 else kernel


def compile_seconds() -> float:
    """Seconds spent compiling local-attention kernels in this process so far."""
    return sum(KERNEL_TIMES.values())


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, half: int,
                     dropout_p: float = 0.0, kernel: str = "banded") -> torch.Tensor:
    """(B, h, T, d) queries, keys, values; key_mask (B, T), True = a real token. Each query
    attends to the keys within `half` positions of it (and to itself)."""
    T = q.shape[-2]
    if half >= T - 1:  # the window covers the sequence: full attention
        mask = None if key_mask is None else _with_self(key_mask[:, None, None, :].expand(-1, 1, T, T))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if kernel == "dense":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dense_window_mask(key_mask, T, half, q.device),
                                              dropout_p=dropout_p)
    pattern = window_pattern(T, half)  # the one description of the window the banded and flex kernels share
    return pattern_attention(q, k, v, key_mask, pattern, "flex" if kernel == "flex" else "gather", dropout_p)


def dense_window_mask(key_mask: torch.Tensor | None, T: int, half: int, device) -> torch.Tensor:
    """(B or 1, 1, T, T) bool: |i - j| <= half and key j real, or j = i."""
    i = torch.arange(T, device=device)
    window = (i[:, None] - i[None, :]).abs() <= half
    if key_mask is None:
        return window[None, None]
    return window[None, None] & key_mask[:, None, None, :] | torch.eye(T, dtype=torch.bool, device=device)


def _with_self(mask: torch.Tensor) -> torch.Tensor:
    T = mask.shape[-1]
    return mask | torch.eye(T, dtype=torch.bool, device=mask.device)
