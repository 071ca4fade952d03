"""Rotary position embeddings (RoFormer): queries and keys rotated by their position, so
that attention scores depend on relative positions and no position table is learned.

The rotation pairs dimension i with dimension i + d/2 ("rotate half", as HF's ModernBERT,
NeoBERT and LLaMA implementations do), with frequencies theta ** (-2i / d). ModernBERT's
local (sliding-window) layers use theta 10,000 and its global layers 160,000: `Rotary`
holds one table per theta. The rotation is computed in float32 and cast back, as HF does,
so bf16 runs rotate as precisely as fp32 ones.
"""
from __future__ import annotations

import torch
from torch import nn


class Rotary(nn.Module):
    """cos/sin tables for one head size and a set of thetas; nothing learned, nothing saved."""

    def __init__(self, head_dim: int, thetas: tuple[float, ...]):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, got {head_dim}")
        self.head_dim = head_dim
        self.thetas = tuple(dict.fromkeys(thetas))
        for n, theta in enumerate(self.thetas):
            inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
            self.register_buffer(f"inv_freq_{n}", inv, persistent=False)

    def tables(self, length: int, device: torch.device) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
        """theta -> (cos, sin), each (length, head_dim) in float32."""
        out = {}
        positions = torch.arange(length, device=device, dtype=torch.float32)
        for n, theta in enumerate(self.thetas):
            freqs = positions[:, None] * getattr(self, f"inv_freq_{n}").to(device)[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            out[theta] = (emb.cos(), emb.sin())
        return out


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x: (B, h, T, d); cos, sin: (T, d)."""
    cos, sin = cos_sin
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)
