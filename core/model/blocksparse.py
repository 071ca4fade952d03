"""Block-sparse attention: one description of which key blocks each query block attends
(`BlockPattern`), and three kernels that compute the same function from it.

A pattern cuts the sequence into blocks of `block` tokens. Some query blocks are *global*:
they attend to every key (BigBird's first and last blocks). Every other query block attends
to the key blocks listed in its *slots* (per head, or one list for all heads), optionally
narrowed token by token to a window of `half` positions either side (the sliding window).
Two patterns are built here:

- `window_pattern(T, half)`: blocks of `half` tokens, each attending to its own and its two
  neighbours with the exact window: ModernBERT's local layers (`core.model.local`).
- `bigbird_pattern(n_blocks, block, random)`: BigBird's ITC pattern (Zaheer et al. 2020):
  the first and last blocks global, every other query block attending to the two global key
  blocks, a band of three blocks around it and `num_random_blocks` random blocks drawn per
  layer and head (`bigbird_random_blocks`, a seeded generator, so training and evaluation
  see the same blocks). HF's `BigBirdModel(attention_type="block_sparse")` computes exactly
  this, given the same random blocks.

The kernels, each fed by the same pattern:

- `gather`: per query block, its slots' key and value blocks gathered into one (K x block)
  key set, then one batched SDPA call over all query blocks with the exact token mask;
  the global blocks attend through a second SDPA call over the whole sequence. Time and
  memory grow as T x K x block, and autograd differentiates it on any device: the CPU's
  kernel, and the one that trains wherever flex_attention cannot (dropout, a CPU backward).
  A slot may repeat a block (HF's plans at 1,024, 3,072 and 4,096 tokens can draw a band or
  global block as a random one, its "Missing -3" comments): its keys then count twice in
  the softmax, as HF counts them; the patterns built here never repeat a block.
- `flex`: `torch.nn.attention.flex_attention` with a `BlockMask` built from the pattern's
  block table (`from_kv_blocks`, 128-token flex blocks), the exact token mask as its
  `mask_mod`; compiled once per shape, its compile seconds kept apart
  (`KERNEL_TIMES`). CUDA's kernel; forward-only on a CPU in torch 2.13.
- `dense`: SDPA with the pattern's T x T boolean mask (`BlockPattern.token_mask`): the
  reference the other two are tested against.

A query always attends to itself as well, so no row is empty: real tokens never see
padding keys, and a padding query's output is finite.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KERNELS = ("auto", "gather", "flex", "dense")
_FLEX_BLOCK = 128

# seconds spent compiling flex_attention, per shape (this module's block-sparse kernel and the
# sliding window's, core.model.local), since the process started: a row records it apart from
# training time (`core.model.local.compile_seconds`)
KERNEL_TIMES: dict[tuple, float] = {}


def kernel_for(requested: str, device: torch.device | str, dropout_p: float = 0.0, training: bool = False) -> str:
    """The block-sparse kernel that runs: `auto` is flex on CUDA and gather on a CPU; flex has
    no attention dropout, and no CPU backward in torch 2.13, so those cases take gather."""
    if requested not in KERNELS:
        raise ValueError(f"unknown block-sparse attention kernel {requested!r}; choose from {', '.join(KERNELS)}")
    cuda = torch.device(device).type == "cuda"
    kernel = ("flex" if cuda else "gather") if requested == "auto" else requested
    if kernel == "flex" and (dropout_p > 0 or (training and not cuda)):
        return "gather"
    return kernel


@dataclass(frozen=True, eq=False)
class BlockPattern:
    """Which key blocks each query block attends (see the module docstring).

    rows:  (R,) the query blocks that attend through slots; the others are global.
    slots: (H', R, K) their key blocks, -1 for an unused slot; H' is 1 (every head alike) or
           the number of heads.
    half:  the sliding window's reach in tokens (|i - j| <= half), or None (whole blocks)."""
    block: int
    n_blocks: int
    rows: torch.Tensor
    slots: torch.Tensor
    half: int | None = None

    @property
    def length(self) -> int:
        return self.block * self.n_blocks

    @property
    def global_rows(self) -> torch.Tensor:
        keep = torch.ones(self.n_blocks, dtype=torch.bool)
        keep[self.rows] = False
        return keep.nonzero().flatten()

    def table(self) -> torch.Tensor:
        """(H', n_blocks, n_blocks) bool: query block i may attend to key block j."""
        heads, R, K = self.slots.shape
        table = torch.zeros(heads, self.n_blocks, self.n_blocks, dtype=torch.bool)
        table[:, self.global_rows] = True
        valid = self.slots >= 0
        h = torch.arange(heads)[:, None, None].expand(heads, R, K)
        r = self.rows[None, :, None].expand(heads, R, K)
        table[h[valid], r[valid], self.slots[valid]] = True
        return table

    def token_mask(self, key_mask: torch.Tensor | None, T: int) -> torch.Tensor:
        """(B or 1, H', T, T) bool for the first T tokens: the pattern's blocks, the window,
        the real keys (key_mask (B, T), True = real), and always the query itself."""
        table = self.table()
        blk = torch.arange(T) // self.block
        mask = table[:, blk][:, :, blk]                               # (H', T, T)
        if self.half is not None:
            i = torch.arange(T)
            mask = mask & ((i[:, None] - i[None, :]).abs() <= self.half)
        mask = mask[None]
        if key_mask is not None:
            mask = mask & key_mask.bool().cpu()[:, None, None, :]
        device = key_mask.device if key_mask is not None else "cpu"
        return (mask | torch.eye(T, dtype=torch.bool)).to(device)

    def keys_per_query(self) -> float:
        """The mean number of keys a query is scored against (slots counted as listed)."""
        slot_blocks = (self.slots >= 0).sum(-1).float().mean(0).sum().item()
        scores = slot_blocks * self.block * self.block + len(self.global_rows) * self.block * self.length
        return scores / self.length


def window_pattern(T: int, half: int) -> BlockPattern:
    """The sliding window as a pattern: blocks of `half` tokens, each query block's own and
    neighbouring key blocks, the exact window applied token by token."""
    b = max(1, half)
    nb = math.ceil(T / b)
    i = torch.arange(nb)
    slots = torch.stack([i - 1, i, i + 1], dim=-1)
    slots = torch.where((slots >= 0) & (slots < nb), slots, -1)
    return BlockPattern(b, nb, i, slots[None], half)


def bigbird_pattern(n_blocks: int, block: int, random: torch.Tensor | None = None) -> BlockPattern:
    """BigBird's ITC pattern over `n_blocks` blocks (at least 4): blocks 0 and n-1 global;
    query block i (1 <= i <= n-2) attends to key blocks 0, i-1, i, i+1, n-1 (each once) and
    to `random[h, i-1]` ((H, n-2, r) key blocks; -1 = none)."""
    if n_blocks < 4:
        raise ValueError(f"BigBird's pattern needs at least 4 blocks, got {n_blocks}")
    rows = torch.arange(1, n_blocks - 1)
    fixed = torch.stack([torch.zeros_like(rows), rows - 1, rows, rows + 1, torch.full_like(rows, n_blocks - 1)], -1)
    fixed[0, 1] = -1            # row 1: its left neighbour is global block 0
    fixed[-1, 3] = -1           # row n-2: its right neighbour is global block n-1
    if random is None:
        random = torch.empty(1, n_blocks - 2, 0, dtype=torch.long)
    if random.shape[1] != n_blocks - 2:
        raise ValueError(f"random blocks for {random.shape[1] + 2} blocks given to a pattern of {n_blocks}")
    heads = random.shape[0]
    slots = torch.cat([fixed[None].expand(heads, -1, -1), random.long()], dim=-1)
    return BlockPattern(block, n_blocks, rows, slots)


def bigbird_random_blocks(n_blocks: int, num_random: int, heads: int, seed: int) -> torch.Tensor:
    """(heads, n_blocks - 2, num_random) random key blocks for query blocks 1 .. n-2, drawn
    from a generator seeded with `seed` (the layer: every forward of a layer sees the same
    blocks, as HF's, which seeds numpy with the layer index). Never a global block (0, n-1)
    or one of the row's band; -1 where fewer blocks than `num_random` remain."""
    R = n_blocks - 2
    if num_random == 0 or R <= 0:
        return torch.empty(heads, max(R, 0), 0, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(heads, R, n_blocks, generator=g)
    rows = torch.arange(1, n_blocks - 1)[:, None]
    cols = torch.arange(n_blocks)[None, :]
    illegal = (cols == 0) | (cols == n_blocks - 1) | ((cols - rows).abs() <= 1)
    scores = scores.masked_fill(illegal[None], -1.0)
    k = min(num_random, n_blocks)
    top, idx = scores.topk(k, dim=-1)
    idx = torch.where(top >= 0, idx, -1)
    if k < num_random:
        idx = F.pad(idx, (0, num_random - k), value=-1)
    return idx


def bigbird_keys_per_query(T: int, block: int, num_random: int) -> int:
    """Keys a query is scored against under BigBird at T tokens (the cost model), the sequence
    padded to whole blocks; at T <= (5 + 2r) x block, full attention (HF's rule)."""
    if uses_full(T, block, num_random):
        return T
    nb = math.ceil(T / block)
    n = nb * block
    keys = 2 * block * n + 2 * block * (4 + num_random) * block + (nb - 4) * block * (5 + num_random) * block
    return round(keys / n)


def uses_full(T: int, block: int, num_random: int) -> bool:
    """HF BigBird's rule: at most (5 + 2r) x block tokens (2 global, 3 band and 2r random
    blocks' worth), block-sparse attention would attend to nearly everything: full attention."""
    return T <= (5 + 2 * num_random) * block


# -- kernels ------------------------------------------------------------------------------------------
def pattern_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                      pattern: BlockPattern, kernel: str = "gather", dropout_p: float = 0.0) -> torch.Tensor:
    """(B, h, T, d) queries, keys, values (T <= pattern.length; shorter ones are padded here
    and the padding masked); key_mask (B, T), True = a real token."""
    if kernel == "dense":
        mask = pattern.token_mask(key_mask, q.shape[-2])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.device), dropout_p=dropout_p)
    if kernel == "flex":
        return _flex(q, k, v, key_mask, pattern, dropout_p)
    if kernel == "gather":
        return _gather(q, k, v, key_mask, pattern, dropout_p)
    raise ValueError(f"unknown block-sparse attention kernel {kernel!r}; choose from gather, flex, dense")


def _pad_to(pattern: BlockPattern, key_mask: torch.Tensor | None, *xs: torch.Tensor):
    B, _, T, _ = xs[0].shape
    pad = pattern.length - T
    if pad < 0:
        raise ValueError(f"a pattern of {pattern.length} tokens cannot hold {T}")
    valid = torch.ones(B, T, dtype=torch.bool, device=xs[0].device) if key_mask is None else key_mask.bool()
    return F.pad(valid, (0, pad), value=False), [F.pad(x, (0, 0, 0, pad)) if pad else x for x in xs]


def _gather(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
            pattern: BlockPattern, dropout_p: float) -> torch.Tensor:
    B, h, T, d = q.shape
    b, nb = pattern.block, pattern.n_blocks
    valid, (q, k, v) = _pad_to(pattern, key_mask, q, k, v)
    dev = q.device
    rows, slots = pattern.rows.to(dev), pattern.slots.to(dev)
    heads, R, K = slots.shape
    idx = slots.clamp(min=0)
    qb, kb, vb = (t.view(B, h, nb, b, d) for t in (q, k, v))
    if heads == 1:
        kg, vg = kb[:, :, idx[0]], vb[:, :, idx[0]]                          # (B, h, R, K, b, d)
    else:
        if heads != h:
            raise ValueError(f"a pattern with slots for {heads} heads given {h} heads")
        hh = torch.arange(h, device=dev)[:, None, None]
        kg, vg = kb[:, hh, idx], vb[:, hh, idx]
    kg, vg = kg.reshape(B, h, R, K * b, d), vg.reshape(B, h, R, K * b, d)
    # the token mask of every (row, slot): a real key in a used slot, within the window; and the query itself
    real = valid.view(B, nb, b)[:, idx] & (slots >= 0)[None, ..., None]      # (B, H', R, K, b)
    qpos = rows[:, None] * b + torch.arange(b, device=dev)                    # (R, b)
    kpos = (idx[..., None] * b + torch.arange(b, device=dev)).reshape(heads, R, K * b)
    mask = real.reshape(B, heads, R, 1, K * b)
    offset = qpos[None, :, :, None] - kpos[:, :, None, :]                    # (H', R, b, K*b)
    if pattern.half is not None:
        mask = mask & (offset.abs() <= pattern.half)[None]
    used = (slots >= 0)[..., None].expand(heads, R, K, b).reshape(heads, R, 1, K * b)
    mask = mask | ((offset == 0) & used)[None]                               # the query itself (in its own slot)
    full_rows = len(rows) == nb
    qr = qb if full_rows else qb[:, :, rows]
    out = F.scaled_dot_product_attention(qr, kg, vg, attn_mask=mask, dropout_p=dropout_p)  # (B, h, R, b, d)
    if not full_rows:
        grows = pattern.global_rows.to(dev)
        G = len(grows)
        qg = qb[:, :, grows].reshape(B, h, G * b, d)
        gpos = (grows[:, None] * b + torch.arange(b, device=dev)).reshape(-1)
        gmask = valid[:, None, None, :] | (gpos[:, None] == torch.arange(nb * b, device=dev)[None, :])[None, None]
        og = F.scaled_dot_product_attention(qg, k, v, attn_mask=gmask, dropout_p=dropout_p).view(B, h, G, b, d)
        order = torch.cat([rows, grows])
        out = torch.cat([out, og], dim=2)[:, :, torch.argsort(order)]
    return out.reshape(B, h, nb * b, d)[:, :, :T]


_COMPILED: dict[str, object] = {}


def flex_block_mask(pattern: BlockPattern, valid: torch.Tensor, n: int):
    """The flex_attention BlockMask of a pattern over `n` tokens (a multiple of 128, at least
    the pattern's length): its block table coarsened to 128-token flex blocks lists the key
    blocks of each query block, and the exact token mask (`valid` (B, n) real keys, the
    window, the query itself) is its mask_mod."""
    from torch.nn.attention.flex_attention import BlockMask

    b, dev = pattern.block, valid.device
    table = pattern.table()
    heads = table.shape[0]
    nbt = n // b if n % b == 0 else math.ceil(n / b)
    full = torch.zeros(heads, nbt, nbt, dtype=torch.bool)
    full[:, :pattern.n_blocks, :pattern.n_blocks] = table
    pad_blocks = torch.arange(pattern.n_blocks, nbt)
    full[:, pad_blocks, pad_blocks] = True            # pad queries attend to themselves
    # token -> flex block: coarsen the b-token table to 128-token blocks
    tok_blk = torch.arange(n) // b
    tok_blk = tok_blk.clamp(max=nbt - 1)
    nc = n // _FLEX_BLOCK
    fb = torch.arange(nc)
    # a flex block pair is on if any of its tokens' blocks are (b-blocks spanned by each flex block)
    first, last = tok_blk[fb * _FLEX_BLOCK], tok_blk[fb * _FLEX_BLOCK + _FLEX_BLOCK - 1]
    span = torch.zeros(nc, nbt, dtype=torch.bool)
    for c in range(nc):
        span[c, first[c]:last[c] + 1] = True
    coarse = torch.einsum("qa,hab,kb->hqk", span.float(), full.float(), span.float()) > 0   # (H', nc, nc)
    kv_num = coarse.sum(-1).to(torch.int32)
    kv_idx = torch.argsort((~coarse).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    table_dev = full.to(dev)
    token_block = tok_blk.to(dev)
    half = pattern.half

    def mask_mod(batch, head, qi, ki):
        h = head if heads > 1 else 0
        on = table_dev[h, token_block[qi], token_block[ki]] & valid[batch, ki]
        if half is not None:
            on = on & ((qi - ki).abs() <= half)
        return on | (qi == ki)

    return BlockMask.from_kv_blocks(kv_num[None].to(dev), kv_idx[None].to(dev), BLOCK_SIZE=_FLEX_BLOCK,
                                    mask_mod=mask_mod, seq_lengths=(n, n))


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
          pattern: BlockPattern, dropout_p: float) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    if dropout_p:
        raise ValueError("flex_attention has no attention dropout (kernel_for picks gather for a layer with dropout)")
    B, h, T, d = q.shape
    n = math.ceil(max(T, pattern.length) / _FLEX_BLOCK) * _FLEX_BLOCK
    valid = torch.ones(B, T, dtype=torch.bool, device=q.device) if key_mask is None else key_mask.bool()
    valid = F.pad(valid, (0, n - T), value=False)
    block_mask = flex_block_mask(pattern, valid, n)
    if "flex" not in _COMPILED:
        _COMPILED["flex"] = torch.compile(flex_attention, dynamic=False)
    q, k, v = (F.pad(t, (0, 0, 0, n - T)) for t in (q, k, v))
    shape = ("block-sparse", n, pattern.block, pattern.half or 0, q.device.type)
    first = shape not in KERNEL_TIMES
    t0 = time.perf_counter()
    out = _COMPILED["flex"](q, k, v, block_mask=block_mask)
    if first:
        KERNEL_TIMES[shape] = time.perf_counter() - t0  # type: ignore[index]
    return out[:, :, :T]
