"""The encoder: L layers mapped onto shared parameter groups, optionally reversible.

A layer is two residual sublayers, attention then feed-forward. Sharing (ALBERT) is
expressed by *which module object* each layer uses: layer i takes group
i * num_groups // num_layers, and `sharing` says whether the attention sublayer, the
FFN sublayer, both or neither come from the group. A shared sublayer is one object,
so its parameters exist once and receive the summed gradient of every use.

Reversible residuals come from reformer-pytorch's `ReversibleSequence`. Its traps are
handled here, not by callers:
- it only back-propagates into parameters if its input requires grad, so we make sure;
- it records RNG state and LSH buckets per forward, so train mode must run one forward
  per backward; eval and no-grad forwards take the mathematically identical
  two-stream ("irreversible") path instead, which has no such state;
- `layer_dropout` would break that equivalence, so it is never used.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from reformer_pytorch.reformer_pytorch import Chunk
from reformer_pytorch.reversible import ReversibleSequence
from torch import nn

from core.model.attention import build_attention
from core.model.config import ModelConfig
from core.model.dropout import Dropout
from core.model.unpad import Packing


def activation_fn(name: str):
    return {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}[name]


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = activation_fn(cfg.activation)

    def forward(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Sublayer(nn.Module):
    """Residual wrapper: post-LN `norm(x + f(x))` or pre-LN `x + f(norm(x))`."""

    def __init__(self, fn: nn.Module, cfg: ModelConfig):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout)
        self.pre_norm = cfg.norm == "pre"

    def branch(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.dropout(self.fn(self.norm(x) if self.pre_norm else x, **kwargs))

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if self.pre_norm:
            return x + self.branch(x, **kwargs)
        return self.norm(x + self.branch(x, **kwargs))


class _Branch(nn.Module):
    """Exposes a pre-LN sublayer's residual branch as the f/g of a reversible block.

    reformer-pytorch recomputes every branch inside its custom backward, where the
    forward's autocast no longer holds (the backward runs after the `with autocast`
    block, and on CUDA in autograd's own thread). Unhelped, a bf16 forward is recomputed
    in fp32: slower, more activation memory, and the inputs reconstructed as
    y - branch(y) carry the difference between the two precisions into the gradients
    (2-4% of their norm at `tiny`). So the branch records the autocast state of its
    forward and restores it when reformer-pytorch signals the recomputation (`_reverse`),
    as torch.utils.checkpoint does."""

    def __init__(self, sublayer: Sublayer):
        super().__init__()
        self.sublayer = sublayer
        self.autocast_state: tuple[str, bool, torch.dtype] | None = None

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        kind = x.device.type
        if not kwargs.get("_reverse"):
            self.autocast_state = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        elif self.autocast_state is not None and self.autocast_state[0] == kind:
            _, enabled, dtype = self.autocast_state
            with torch.autocast(kind, dtype=dtype, enabled=enabled):
                return self.sublayer.branch(x, **kwargs)
        return self.sublayer.branch(x, **kwargs)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        L, G = cfg.num_layers, cfg.num_groups
        share_attn = cfg.sharing in ("all", "attention")
        share_ffn = cfg.sharing in ("all", "ffn")
        # index of the module object each layer uses
        self.attention_index = [cfg.group_of_layer(i) if share_attn else i for i in range(L)]
        self.ffn_index = [cfg.group_of_layer(i) if share_ffn else i for i in range(L)]
        self.attention = nn.ModuleList(
            Sublayer(build_attention(cfg), cfg) for _ in range(G if share_attn else L)
        )
        self.ffn = nn.ModuleList(
            Sublayer(Chunk(cfg.ffn_chunks, FeedForward(cfg), along_dim=-2), cfg)
            for _ in range(G if share_ffn else L)
        )
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.norm == "pre" else None
        self.force_irreversible = False  # run a reversible model's two-stream path in training too
        self.reversible_saved_bytes = 0
        self._pending_backward = False
        if cfg.reversible:
            # Kept out of the module tree on purpose: it only re-wraps modules registered
            # above, and registering it would duplicate every weight in the state dict.
            pairs = [(_Branch(a), _Branch(f)) for a, f in self.layers()]
            self.__dict__["_reversible"] = ReversibleSequence(pairs, send_signal=True)

    @property
    def packs(self) -> bool:
        """Whether every attention kind here takes the real tokens packed (core.model.unpad)."""
        return all(sublayer.fn.packs for sublayer in self.attention)

    def layers(self) -> list[tuple[Sublayer, Sublayer]]:
        return [(self.attention[a], self.ffn[f]) for a, f in zip(self.attention_index, self.ffn_index)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                packing: Packing | None = None) -> torch.Tensor:
        """x: (B, T, H), or the (1, N, H) real tokens of `packing` (then so is the output)."""
        if self.cfg.reversible:
            x = self._forward_two_stream(x, {"mask": mask, "packing": packing})
        else:
            for attn, ffn in self.layers():
                x = ffn(attn(x, mask=mask, packing=packing))
        return self.final_norm(x) if self.final_norm is not None else x

    def _forward_two_stream(self, x: torch.Tensor, attn_args: dict) -> torch.Tensor:
        rev: ReversibleSequence = self.__dict__["_reversible"]
        x = torch.cat([x, x], dim=-1)
        if self.training and torch.is_grad_enabled() and not self.force_irreversible:
            if self._pending_backward:
                warnings.warn(
                    "reversible encoder: a second training forward ran before the backward of "
                    "the first; reformer-pytorch's reversible layers keep one forward's RNG "
                    "state and LSH buckets, so gradients of the first forward may be wrong. "
                    "Run one forward per backward, or use model.eval() for extra forwards.",
                    stacklevel=3,
                )
            if not x.requires_grad:  # otherwise autograd never calls the reversible backward
                x = x.detach().requires_grad_()
            x = rev(x, **attn_args)
            # reformer-pytorch keeps the output for the backward as `ctx.y`, outside autograd's
            # saved tensors; the memory measurement adds it from here.
            self.reversible_saved_bytes = x.numel() * x.element_size()
            self._pending_backward = True
            x.register_hook(self._backward_started)
        else:
            for block in rev.irrev_blocks:
                x = block(x, f_args=attn_args, g_args={})
        y1, y2 = x.chunk(2, dim=-1)
        return (y1 + y2) / 2

    def _backward_started(self, grad: torch.Tensor) -> torch.Tensor:
        self._pending_backward = False
        return grad
