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
- `local`: full attention within a sliding window of `local_window` tokens in every layer
  (`core.model.local`; BERT with ModernBERT's local layers everywhere: the pure-window arm).
- `bigbird`: BigBird's block-sparse attention (global, band and random blocks;
  `core.model.blocksparse`), with BERT's Q, K, V and O: a BERT checkpoint loads as it is.

The sparse kinds (`sparse = True`) take full attention instead on a batch of at most
`full_attn_threshold` tokens per sequence (reformer-pytorch's `full_attn_thres`): the encoder
decides per forward and passes `full=True`; `ran` counts the kernel each call took.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from einops import rearrange
from reformer_pytorch.reformer_pytorch import TOKEN_SELF_ATTN_VALUE, LSHAttention
from torch import nn

from core.model import blocksparse
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
    sparse = False               # attends to fewer keys than the sequence (full_attn_threshold applies)

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
        self.ran: Counter[str] = Counter()  # calls per kernel (sparse kinds and local layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, packing: Packing | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, half: int | None = None,
                **kw: object) -> torch.Tensor:
        q, k, v = self._qkv(x, packing, rope)
        return self.out(_packed(packing, _merge_heads(self._attend(q, k, v, mask, half, **kw))))

    def _qkv(self, x: torch.Tensor, packing: Packing | None,
             rope: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, ...]:
        qkv = _padded(packing, self.query(x), self.key(x), self.value(x))
        q, k, v = (_split_heads(t, self.heads) for t in qkv)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        return q, k, v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                half: int | None, **_: object) -> torch.Tensor:
        if half is not None:
            p = self.dropout.p if self.dropout.training else 0.0
            kernel = kernel_for(self.local_kernel, q.device, p, q.shape[-2], half)
            self.ran[kernel] += 1
            return window_attention(q, k, v, mask, half, p, kernel)
        return attend(q, k, v, None if mask is None else mask[:, None, None, :], self.dropout)


@ATTENTION.register("local")
class LocalAttention(FullAttention):
    """Full attention within a sliding window in every layer (`local_window // 2` tokens either
    side, as the local layers of `global_every`); `full=True` (a batch within
    `full_attn_threshold`) attends to the whole sequence."""
    sparse = True

    @staticmethod
    def keys_per_query(cfg: ModelConfig, seq_len: int) -> int:
        return min(2 * (cfg.local_window // 2) + 1, seq_len)

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.half = cfg.local_window // 2

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                half: int | None, full: bool = False, **_: object) -> torch.Tensor:
        if full:
            self.ran["full"] += 1
            return super()._attend(q, k, v, mask, None)
        return super()._attend(q, k, v, mask, self.half if half is None else half)


@ATTENTION.register("bigbird")
class BigBirdAttention(FullAttention):
    """BigBird's block-sparse attention (ITC: two global blocks, a band of three, random
    blocks), BERT's projections. In a local layer (`global_every > 1`) it is the sliding
    window; at most (5 + 2r) x block_size tokens, or with `full=True`, full attention. Its
    random blocks are drawn per layer and head from a generator seeded with the layer, once
    per number of blocks, and kept (`plans`); `set_random_blocks` installs others (HF's)."""
    sparse = True

    @staticmethod
    def keys_per_query(cfg: ModelConfig, seq_len: int) -> int:
        return blocksparse.bigbird_keys_per_query(seq_len, cfg.block_size, cfg.num_random_blocks)

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.block, self.num_random = cfg.block_size, cfg.num_random_blocks
        self.sparse_kernel = "auto"   # gather | flex | dense (core.model.blocksparse); set by PretrainingModel
        self.plans: dict[tuple[int, int], torch.Tensor] = {}   # (layer, blocks) -> (heads, blocks - 2, r)
        self._patterns: dict[tuple[int, int], blocksparse.BlockPattern] = {}

    def set_random_blocks(self, layer: int, blocks: torch.Tensor) -> None:
        """Use `blocks` ((heads, n - 2, r) key blocks of query blocks 1 .. n-2) as layer
        `layer`'s random blocks at n blocks, e.g. the plan HF drew."""
        blocks = torch.as_tensor(blocks, dtype=torch.long).cpu()
        if blocks.dim() != 3 or blocks.shape[0] not in (1, self.heads):
            raise ValueError(f"random blocks of shape (heads, blocks - 2, r) expected, got {tuple(blocks.shape)}")
        n = blocks.shape[1] + 2
        self.plans[(layer, n)] = blocks
        self._patterns.pop((layer, n), None)

    def pattern(self, layer: int, n_blocks: int) -> blocksparse.BlockPattern:
        key = (layer, n_blocks)
        if key not in self._patterns:
            if key not in self.plans:
                self.plans[key] = blocksparse.bigbird_random_blocks(n_blocks, self.num_random, self.heads, seed=layer)
            self._patterns[key] = blocksparse.bigbird_pattern(n_blocks, self.block, self.plans[key])
        return self._patterns[key]

    def kernel(self, length: int, device: torch.device | str, training: bool = False) -> str:
        """The kernel a global layer runs at `length` tokens: full below BigBird's threshold."""
        if blocksparse.uses_full(length, self.block, self.num_random):
            return "full"
        p = self.dropout.p if training else 0.0
        return blocksparse.kernel_for(self.sparse_kernel, device, p, training and torch.is_grad_enabled())

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                half: int | None, full: bool = False, layer: int = 0, **_: object) -> torch.Tensor:
        if half is not None:
            return super()._attend(q, k, v, mask, half)
        T = q.shape[-2]
        kernel = "full" if full else self.kernel(T, q.device, self.dropout.training)
        self.ran[kernel] += 1
        if kernel == "full":
            return super()._attend(q, k, v, mask, None)
        p = self.dropout.p if self.dropout.training else 0.0
        pattern = self.pattern(layer, -(-T // self.block))
        return blocksparse.pattern_attention(q, k, v, mask, pattern, kernel, p)


@ATTENTION.register("full-shared-qk")
class SharedQKAttention(nn.Module):
    packs = True
    projections = 3              # shared QK, V, O
    flops_label = "exact"
    sparse = False
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
        q = _split_heads(qk, self.heads)
        if rope is not None:
            q = apply_rotary(q, rope)
        out = shared_qk_attention(q, _split_heads(v, self.heads), mask, self.dropout, half)
        return self.out(_packed(packing, _merge_heads(out)))


def shared_qk_attention(q: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, drop: Dropout,
                        half: int | None = None) -> torch.Tensor:
    """The Reformer's full attention over a shared QK ((B, h, T, d) each): keys are the
    L2-normalised queries; -inf on padded keys, and a large finite penalty on the diagonal so
    that a token attends to itself only when no other key is available (`FullQKAttention`)."""
    B, _h, T, _d = q.shape
    k = F.normalize(q, p=2, dim=-1)
    bias = torch.zeros(T, T, device=q.device, dtype=q.dtype)
    bias.fill_diagonal_(TOKEN_SELF_ATTN_VALUE)
    bias = bias.expand(B, 1, T, T)
    if mask is not None:
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
    if half is not None:  # a local layer: keys beyond the window masked too
        bias = bias.masked_fill(~dense_window_mask(None, T, half, q.device), float("-inf"))
    return attend(q, k, v, bias, drop)


@ATTENTION.register("lsh")
class LSHSelfAttention(nn.Module):
    # pad keys take places in LSH's sorted bucket chunks, so the real tokens' outputs depend
    # on what the pad positions hold: an unpadded model keeps LSH layers padded
    packs = False
    projections = 3                       # shared QK, V, O
    flops_label = "dense-equivalent"      # counted as dense products over each query's chunks
    sparse = True

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
        self.full_dropout = Dropout(cfg.attention_dropout)
        self.ran: Counter[str] = Counter()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, packing: Packing | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, half: int | None = None,
                full: bool = False, **kw: object) -> torch.Tensor:
        if packing is not None:
            raise ValueError("LSH attention runs padded: its buckets depend on the pad positions' keys, "
                             "so a packed batch would change the real tokens' outputs")
        if half is not None:
            raise ValueError("LSH attention is global: local layers are windowed full attention (core.model.encoder)")
        rev = {k: v for k, v in kw.items() if k in ("_reverse", "_depth")}
        if full:  # a short batch (full_attn_threshold): the shared-QK full attention, as reformer-pytorch's
            self.ran["full"] += 1
            qk, v = self.qk(x), self.value(x)
            q = _split_heads(qk, self.heads)
            if rope is not None:
                q = apply_rotary(q, rope)
            return self.out(_merge_heads(shared_qk_attention(q, _split_heads(v, self.heads), mask, self.full_dropout)))
        self.ran["lsh"] += 1
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
