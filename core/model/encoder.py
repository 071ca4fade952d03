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
from collections import Counter

import torch
import torch.nn.functional as F
from reformer_pytorch.reformer_pytorch import Chunk
from reformer_pytorch.reversible import ReversibleSequence
from torch import nn

from core.model.attention import ATTENTION, build_attention
from core.model.config import ModelConfig
from core.model.dropout import Dropout
from core.model.norms import make_norm
from core.model.rope import Rotary
from core.model.unpad import Packing


def activation_fn(name: str):
    return {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu}[name]


class FeedForward(nn.Module):
    """mlp: fc2(act(fc1 x)). glu: fc1 is one H -> 2I matrix whose halves are the value
    and the gate (HF ModernBERT's `Wi`, chunked the same way): fc2(act(x W) * x V)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.glu = cfg.ffn == "glu"
        width = cfg.intermediate_size
        self.fc1 = nn.Linear(cfg.hidden_size, 2 * width if self.glu else width, bias=cfg.bias)
        self.fc2 = nn.Linear(width, cfg.hidden_size, bias=cfg.bias)
        self.act = activation_fn(cfg.activation)

    def forward(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        if self.glu:
            value, gate = self.fc1(x).chunk(2, dim=-1)
            return self.fc2(self.act(value) * gate)
        return self.fc2(self.act(self.fc1(x)))


class Sublayer(nn.Module):
    """Residual wrapper: post-LN `norm(x + f(x))` or pre-LN `x + f(norm(x))`. `norm` may
    be absent (ModernBERT's layer 0, whose input is the embedding norm's output); a call
    with `skip_norm=True` leaves out a norm that a shared sublayer holds for other layers."""

    def __init__(self, fn: nn.Module, cfg: ModelConfig, norm: bool = True):
        super().__init__()
        self.fn = fn
        self.norm = make_norm(cfg, cfg.hidden_size) if norm else None
        self.dropout = Dropout(cfg.hidden_dropout)
        self.pre_norm = cfg.norm == "pre"

    def branch(self, x: torch.Tensor, skip_norm: bool = False, **kwargs: object) -> torch.Tensor:
        normed = self.pre_norm and self.norm is not None and not skip_norm
        return self.dropout(self.fn(self.norm(x) if normed else x, **kwargs))

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
    as torch.utils.checkpoint does.

    reformer-pytorch hands every block the same arguments; what differs between layers
    (a local window, the rotary table's theta, layer 0's missing norm) the branch adds."""

    def __init__(self, sublayer: Sublayer, layer: dict | None = None):
        super().__init__()
        self.sublayer = sublayer
        self.layer = layer or {}
        self.autocast_state: tuple[str, bool, torch.dtype] | None = None

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        kwargs = per_layer(kwargs, self.layer)
        kind = x.device.type
        if not kwargs.get("_reverse"):
            self.autocast_state = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        elif self.autocast_state is not None and self.autocast_state[0] == kind:
            _, enabled, dtype = self.autocast_state
            with torch.autocast(kind, dtype=dtype, enabled=enabled):
                return self.sublayer.branch(x, **kwargs)
        return self.sublayer.branch(x, **kwargs)


def per_layer(kwargs: dict, layer: dict) -> dict:
    """The attention arguments of one layer: its window, its rotary table (picked by theta
    from the tables computed once per forward), whether it skips its norm."""
    out = {k: v for k, v in kwargs.items() if k != "rope_tables"}
    tables = kwargs.get("rope_tables")
    if tables is not None and layer.get("theta") is not None:
        out["rope"] = tables[layer["theta"]]
    if layer.get("half") is not None:
        out["half"] = layer["half"]
    if layer.get("layer") is not None:
        out["layer"] = layer["layer"]
    if layer.get("skip_norm"):
        out["skip_norm"] = True
    return out


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
        self.attention = nn.ModuleList(self._attention_sublayer(m) for m in range(G if share_attn else L))
        self.ffn = nn.ModuleList(
            Sublayer(Chunk(cfg.ffn_chunks, FeedForward(cfg), along_dim=-2), cfg)
            for _ in range(G if share_ffn else L)
        )
        self.final_norm = make_norm(cfg, cfg.hidden_size) if cfg.norm == "pre" else None
        self.rotary = Rotary(cfg.head_dim, (cfg.rope_theta, self._local_theta())) if cfg.positions == "rope" else None
        self.force_irreversible = False  # run a reversible model's two-stream path in training too
        # training forwards per attention path: "full" (a batch within full_attn_threshold) or
        # the sparse kind's name (`attention_paths`); only sparse kinds count
        self.paths: Counter[str] = Counter()
        self.reversible_saved_bytes = 0
        self._pending_backward = False
        if cfg.reversible:
            # Kept out of the module tree on purpose: it only re-wraps modules registered
            # above, and registering it would duplicate every weight in the state dict.
            pairs = [(_Branch(a, self.layer_args(i)), _Branch(f)) for i, (a, f) in enumerate(self.layers())]
            self.__dict__["_reversible"] = ReversibleSequence(pairs, send_signal=True)

    def _local_theta(self) -> float:
        return self.cfg.rope_theta_local or self.cfg.rope_theta

    def _attention_sublayer(self, m: int) -> Sublayer:
        """Attention module m, of the kind of the layers that use it (a global layer's
        `attention`, or windowed full attention in a local one); layer 0's has no norm of
        its own when it reads the embedding norm (`first_layer_prenorm=False`)."""
        cfg = self.cfg
        users = [i for i, a in enumerate(self.attention_index) if a == m]
        local = cfg.is_local(users[0])
        kind = "full" if local and cfg.attention == "lsh" else cfg.attention
        norm = cfg.first_layer_prenorm or users != [0]
        return Sublayer(build_attention(cfg.replace(attention=kind) if kind != cfg.attention else cfg), cfg, norm)

    def layer_args(self, i: int) -> dict:
        """What layer i passes its attention besides the mask: its window (local layers), the
        theta of its rotary table, and whether it skips a norm its shared sublayer holds."""
        cfg = self.cfg
        local = cfg.is_local(i)
        theta = (self._local_theta() if local else cfg.rope_theta) if cfg.positions == "rope" else None
        return {"half": cfg.local_window // 2 if local else None, "theta": theta,
                "skip_norm": i == 0 and not cfg.first_layer_prenorm, "layer": i}

    @property
    def sparse(self) -> bool:
        """Whether the global layers' attention kind is a sparse one (full_attn_threshold applies)."""
        return bool(ATTENTION[self.cfg.attention].sparse)

    @property
    def packs(self) -> bool:
        """Whether every attention kind here takes the real tokens packed (core.model.unpad)."""
        return all(sublayer.fn.packs for sublayer in self.attention)

    def layers(self) -> list[tuple[Sublayer, Sublayer]]:
        return [(self.attention[a], self.ffn[f]) for a, f in zip(self.attention_index, self.ffn_index)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                packing: Packing | None = None) -> torch.Tensor:
        """x: (B, T, H), or the (1, N, H) real tokens of `packing` (then so is the output)."""
        length = packing.length if packing is not None else x.shape[1]
        tables = self.rotary.tables(length, x.device) if self.rotary is not None else None
        attn_args = {"mask": mask, "packing": packing, "rope_tables": tables}
        if self.sparse:
            full = 0 < length <= self.cfg.full_attn_threshold
            if full:
                attn_args["full"] = True
            if self.training:
                self.paths["full" if full else self.cfg.attention] += 1
        if self.cfg.reversible:
            x = self._forward_two_stream(x, attn_args)
        else:
            for i, (attn, ffn) in enumerate(self.layers()):
                x = ffn(attn(x, **per_layer(attn_args, self.layer_args(i))))
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
