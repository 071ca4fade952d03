"""Attention kinds behind one interface, chosen by name from `ATTENTION`.

Every kind maps hidden states (B, T, H) and a key-padding mask (B, T; True = keep)
to (B, T, H), output projection included; residual, dropout and norm belong to the
block around it. Keeping the interface this narrow is what lets sharing and the
reversible encoder treat all kinds alike. Given a `Packing` (core.model.unpad), the
hidden states are the (1, N, H) real tokens instead: the projections run on those, and
only the attention itself sees the (B, T) layout (full kinds only; LSH runs padded).

- `full`: BERT attention; separate Q, K, V; `F.scaled_dot_product_attention`.
- `full-shared-qk`: the Reformer's attention without hashing: one shared QK
  projection, keys L2-normalised, a token attends to itself only when nothing else is
  available. It is the control arm that separates the LSH effect from the shared-QK
  effect, and it reproduces reformer-pytorch's `FullQKAttention` exactly.
- `lsh`: reformer-pytorch's `LSHAttention`. Inputs are padded to a multiple of
  2 * bucket_size and the padding masked here, so callers never see the constraint.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from reformer_pytorch.reformer_pytorch import TOKEN_SELF_ATTN_VALUE, LSHAttention
from torch import nn

from core.model.config import ModelConfig
from core.model.dropout import Dropout, dropout
from core.model.local import dense_window_mask, kernel_for, window_attention
from core.model.rope import apply_rotary
from core.model.unpad import Packing
from core.registry import Registry

ATTENTION: Registry[type[nn.Module]] = Registry("attention kind")


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(x, "b t (h d) -> b h t d", h=heads)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b h t d -> b t (h d)")


def _padded(packing: Packing | None, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return xs if packing is None else tuple(packing.pad(x) for x in xs)


def _packed(packing: Packing | None, x: torch.Tensor) -> torch.Tensor:
    return x if packing is None else packing.unpad(x)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
           drop: Dropout) -> torch.Tensor:
    """SDPA, except in CPU training with dropout: there torch runs SDPA's math path anyway,
    and spelling it out here lets the attention probabilities take the cheap dropout."""
    if not (drop.training and drop.p > 0 and drop.fast and q.device.type == "cpu"
            and not torch.compiler.is_compiling()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                              dropout_p=drop.p if drop.training else 0.0)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(q.shape[-1] ** -0.5)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else scores + attn_mask
    return torch.matmul(dropout(torch.softmax(scores, dim=-1), drop.p, True), v)


@ATTENTION.register("full")
class FullAttention(nn.Module):
    """What each kind tells the rest of the library (the cost model, unpadding) about itself:"""
    packs = True                 # takes a Packing (core.model.unpad)
    projections = 4              # H x H matrices per layer: Q, K, V, O
    flops_label = "exact"        # its analytic FLOPs are the FLOPs it runs

    @staticmethod
    def keys_per_query(cfg: ModelConfig, seq_len: int) -> int:
        """Keys each query is scored against (the analytic cost model's attention term)."""
        return seq_len

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, bias = cfg.hidden_size, cfg.bias
        self.heads, self.dropout = cfg.num_heads, Dropout(cfg.attention_dropout)
        self.query, self.key, self.value = (nn.Linear(H, H, bias=bias) for _ in range(3))
        self.out = nn.Linear(H, H, bias=bias)
        self.local_kernel = "auto"  # a local layer's kernel (core.model.local); set by PretrainingModel

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, packing: Packing | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, half: int | None = None,
                **_: object) -> torch.Tensor:
        qkv = _padded(packing, self.query(x), self.key(x), self.value(x))
        q, k, v = (_split_heads(t, self.heads) for t in qkv)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        if half is not None:
            p = self.dropout.p if self.dropout.training else 0.0
            kernel = kernel_for(self.local_kernel, q.device, p, q.shape[-2], half)
            out = window_attention(q, k, v, mask, half, p, kernel)
        else:
            out = attend(q, k, v, None if mask is None else mask[:, None, None, :], self.dropout)
        return self.out(_packed(packing, _merge_heads(out)))


@ATTENTION.register("full-shared-qk")
class SharedQKAttention(nn.Module):
    packs = True
    projections = 3              # shared QK, V, O
    flops_label = "exact"
    keys_per_query = FullAttention.keys_per_query

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, bias = cfg.hidden_size, cfg.bias
        self.heads, self.dropout = cfg.num_heads, Dropout(cfg.attention_dropout)
        self.qk, self.value, self.out = (nn.Linear(H, H, bias=bias) for _ in range(3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, packing: Packing | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, half: int | None = None,
                **_: object) -> torch.Tensor:
        qk, v = _padded(packing, self.qk(x), self.value(x))
        B, T, _H = qk.shape
        q = _split_heads(qk, self.heads)
        if rope is not None:
            q = apply_rotary(q, rope)
        k = F.normalize(q, p=2, dim=-1)
        v = _split_heads(v, self.heads)
        # Additive mask: -inf on padded keys, a large finite penalty on the diagonal so a
        # token attends to itself only when no other key is available (as the Reformer).
        bias = torch.zeros(T, T, device=x.device, dtype=q.dtype)
        bias.fill_diagonal_(TOKEN_SELF_ATTN_VALUE)
        bias = bias.expand(B, 1, T, T)
        if mask is not None:
            bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        if half is not None:  # a local layer: keys beyond the window masked too
            bias = bias.masked_fill(~dense_window_mask(None, T, half, x.device), float("-inf"))
        return self.out(_packed(packing, _merge_heads(attend(q, k, v, bias, self.dropout))))


@ATTENTION.register("lsh")
class LSHSelfAttention(nn.Module):
    # pad keys take places in LSH's sorted bucket chunks, so the real tokens' outputs depend
    # on what the pad positions hold: an unpadded model keeps LSH layers padded
    packs = False
    projections = 3                       # shared QK, V, O
    flops_label = "dense-equivalent"      # counted as dense products over each query's chunks

    @staticmethod
    def keys_per_query(cfg: ModelConfig, seq_len: int) -> int:
        """Its own bucket chunk and the one before it, per hash round."""
        return min(2 * cfg.lsh_bucket_size, seq_len) * cfg.lsh_n_hashes

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, bias = cfg.hidden_size, cfg.bias
        self.heads, self.bucket_size = cfg.num_heads, cfg.lsh_bucket_size
        self.qk, self.value, self.out = (nn.Linear(H, H, bias=bias) for _ in range(3))
        self.lsh = LSHAttention(
            bucket_size=cfg.lsh_bucket_size, n_hashes=cfg.lsh_n_hashes, dropout=cfg.attention_dropout
        )
        # LSHAttention calls `self.dropout(dots)` on its (B*h, chunks, 64, 128) bucket scores,
        # the largest tensor of a Reformer step; the cheap CPU dropout replaces nn.Dropout
        # there and leaves the hashing and bucketing untouched.
        self.lsh.dropout = Dropout(cfg.attention_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, packing: Packing | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, half: int | None = None,
                **rev: object) -> torch.Tensor:
        if packing is not None:
            raise ValueError("LSH attention runs padded: its buckets depend on the pad positions' keys, "
                             "so a packed batch would change the real tokens' outputs")
        if half is not None:
            raise ValueError("LSH attention is global: local layers are windowed full attention (core.model.encoder)")
        B, T, _H = x.shape
        multiple = 2 * self.bucket_size
        pad = (-T) % multiple
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
        qk, v = self.qk(x), self.value(x)
        if rope is not None:  # the shared QK is rotated before hashing, as queries and keys would be
            qk = _merge_heads(apply_rotary(_split_heads(qk, self.heads), rope))
        if pad:
            qk, v = F.pad(qk, (0, 0, 0, pad)), F.pad(v, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        qk = rearrange(qk, "b t (h d) -> (b h) t d", h=self.heads)
        v = rearrange(v, "b t (h d) -> (b h) t d", h=self.heads)
        mask = mask.repeat_interleave(self.heads, dim=0)
        # `_reverse` / `_depth` come from the reversible encoder: they make the backward
        # recomputation reuse the buckets hashed in the forward pass.
        o, _attn, _buckets = self.lsh(qk, v, input_mask=mask, **rev)
        if "_depth" not in rev:
            self.lsh._cache = {}  # only the reversible path reads cached buckets
        o = rearrange(o, "(b h) t d -> b t (h d)", h=self.heads)[:, :T]
        return self.out(o)


def build_attention(cfg: ModelConfig) -> nn.Module:
    return ATTENTION[cfg.attention](cfg)
