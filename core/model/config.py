"""ModelConfig: every architectural knob of a BERT-family model in one validated place.

Each field is one independent idea from the papers, so an ablation arm is a dict of
field overrides. Derived values (intermediate size, embedding size, group count) are
filled in `__post_init__` so that a saved config always states what was built.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.config_base import StrictConfig, check_choice

SHARING = ("none", "all", "attention", "ffn")
NORMS = ("post", "pre")
NORM_LAYERS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "silu")
POSITIONS = ("learned", "rope")
FFNS = ("mlp", "glu")
# fields added after checkpoints and results rows existed: left out of `to_dict` (so of
# every checkpoint identity, export and row key) at these defaults, which build what was
# built before they existed (as core.data.config.LATER_DEFAULTS)
LATER_DEFAULTS = {"positions": "learned", "rope_theta": 10000.0, "rope_theta_local": 0.0, "ffn": "mlp",
                  "norm_layer": "layernorm", "bias": True, "norm_bias": True, "first_layer_prenorm": True,
                  "global_every": 1, "local_window": 128, "block_size": 64, "num_random_blocks": 3,
                  "full_attn_threshold": 0}


@dataclass(frozen=True)
class ModelConfig(StrictConfig):
    # vocabulary and positions
    vocab_size: int = 8000
    max_position_embeddings: int = 512
    position_offset: int = 0          # RoBERTa/fairseq start positions at pad_id + 1 = 2
    type_vocab_size: int = 2          # 0 = no segment embeddings
    pad_token_id: int = 0
    # sizes
    hidden_size: int = 256            # H
    num_layers: int = 4               # L
    num_heads: int = 4
    intermediate_size: int = 0        # 0 -> 4 * H
    embedding_size: int = 0           # E; 0 -> H. E < H factorizes the embedding (ALBERT)
    # block choices
    attention: str = "full"           # full | full-shared-qk | lsh | local | bigbird
    norm: str = "post"                # post-LN (BERT) | pre-LN
    norm_layer: str = "layernorm"     # layernorm | rmsnorm (torch.nn.RMSNorm; NeoBERT)
    bias: bool = True                 # biases of the linear layers (attention, feed-forward, MLM transform)
    norm_bias: bool = True            # biases of the LayerNorms (ModernBERT has none)
    # pre-LN: layer 0's attention normalises its input itself; False: it reads the embedding
    # norm's output as it is (ModernBERT, whose embedding norm is that norm)
    first_layer_prenorm: bool = True
    activation: str = "gelu"          # gelu (erf) | gelu_tanh (ALBERT's gelu_new) | silu (SwiGLU)
    # the feed-forward: mlp (fc1, act, fc2) | glu (act(x W) * (x V), then the output
    # projection: GeGLU with gelu, SwiGLU with silu; Shazeer 2020). intermediate_size is
    # the width after gating, as HF's ModernBERT means it; its automatic value keeps the
    # parameters of the 4H MLP: 8H/3, rounded up to a multiple of 8
    ffn: str = "mlp"
    ffn_chunks: int = 1               # >1 runs the FFN in chunks along the sequence (Reformer)
    # positions: learned (a table of max_position_embeddings rows) | rope (RoFormer's
    # rotation of queries and keys; no table). Local layers rotate with rope_theta_local
    # (0: rope_theta), as ModernBERT's 10,000 local and 160,000 global
    positions: str = "learned"
    rope_theta: float = 10000.0
    rope_theta_local: float = 0.0
    # local/global attention (ModernBERT): layer i is global when i % global_every == 0,
    # else local: each token attends to the tokens within local_window // 2 of it (HF's
    # `local_attention`). Global layers use `attention`; local layers windowed full attention
    global_every: int = 1             # 1: every layer global
    local_window: int = 128
    # cross-layer sharing (ALBERT): layer i uses group i * num_groups // num_layers
    sharing: str = "none"             # none | all | attention | ffn
    num_groups: int = 0               # 0 -> num_layers (sharing=none) or 1 (otherwise)
    reversible: bool = False          # RevNet residuals via reformer-pytorch (needs norm=pre)
    # LSH attention (reformer-pytorch)
    lsh_bucket_size: int = 64
    lsh_n_hashes: int = 4
    # BigBird's block-sparse attention (attention="bigbird", ITC): blocks of block_size tokens,
    # the first and last global, every other attending to the 2 global blocks, a band of 3 and
    # num_random_blocks random ones drawn per layer and head from a generator seeded with the
    # layer (core.model.blocksparse); at most (5 + 2r) x block_size tokens, full attention (HF's rule)
    block_size: int = 64
    num_random_blocks: int = 3
    # reformer-pytorch's full_attn_thres: a batch whose sequences are at most this many tokens
    # long takes full attention in place of the sparse kind (bigbird, local, lsh); 0: never
    full_attn_threshold: int = 0
    # heads
    sentence_head: bool = True        # pooler + 2-way classifier for NSP/SOP
    # regularisation and init
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if self.intermediate_size == 0:
            set_("intermediate_size", auto_intermediate(self.hidden_size, self.ffn))
        if self.embedding_size == 0:
            set_("embedding_size", self.hidden_size)
        if self.num_groups == 0:
            set_("num_groups", self.num_layers if self.sharing == "none" else 1)
        self.validate()

    def validate(self) -> None:
        from core.model import ATTENTION  # the registry is the one list of attention kinds

        check_choice("attention", self.attention, ATTENTION.names())
        check_choice("sharing", self.sharing, SHARING)
        check_choice("norm", self.norm, NORMS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("norm_layer", self.norm_layer, NORM_LAYERS)
        check_choice("positions", self.positions, POSITIONS)
        check_choice("ffn", self.ffn, FFNS)
        self._validate_modern()
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                     "max_position_embeddings", "ffn_chunks", "lsh_bucket_size", "lsh_n_hashes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.embedding_size > self.hidden_size:
            raise ValueError(
                f"embedding_size ({self.embedding_size}) > hidden_size ({self.hidden_size}): "
                "factorized embeddings project a smaller E up to H; use embedding_size <= hidden_size"
            )
        if not 1 <= self.num_groups <= self.num_layers:
            raise ValueError(
                f"num_groups ({self.num_groups}) must be between 1 and num_layers ({self.num_layers})"
            )
        if self.sharing == "none" and self.num_groups != self.num_layers:
            raise ValueError(
                f"num_groups={self.num_groups} with sharing='none' shares nothing; set sharing to "
                f"'all', 'attention' or 'ffn', or num_groups={self.num_layers} (= num_layers)"
            )
        if self.reversible and self.norm != "pre":
            raise ValueError(
                "reversible=True needs norm='pre': a reversible residual y = x + f(x) cannot "
                "normalise after the addition (post-LN), so set norm='pre' or reversible=False"
            )
        if self.type_vocab_size < 0 or self.position_offset < 0:
            raise ValueError("type_vocab_size and position_offset must be >= 0")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be < vocab_size ({self.vocab_size})")
        if self.attention == "lsh" and 2 * self.lsh_bucket_size > self.max_position_embeddings:
            raise ValueError(
                f"lsh_bucket_size ({self.lsh_bucket_size}) cannot fit max_position_embeddings "
                f"({self.max_position_embeddings}): LSH needs at least two buckets, i.e. "
                f"2 * lsh_bucket_size <= max_position_embeddings; lower lsh_bucket_size"
            )
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def _validate_modern(self) -> None:
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"positions='rope' rotates pairs of dimensions: the head size {self.head_dim} "
                             "(hidden_size / num_heads) must be even")
        if self.rope_theta <= 0 or self.rope_theta_local < 0:
            raise ValueError(f"rope_theta must be > 0 and rope_theta_local >= 0 (0: rope_theta), got "
                             f"{self.rope_theta} and {self.rope_theta_local}")
        if self.global_every < 1:
            raise ValueError(f"global_every must be >= 1 (1: every layer global), got {self.global_every}")
        if self.local_window < 2:
            raise ValueError(f"local_window must be >= 2 (a token sees local_window // 2 on either side), "
                             f"got {self.local_window}")
        if not self.first_layer_prenorm and self.norm != "pre":
            raise ValueError("first_layer_prenorm=False leaves out layer 0's pre-attention norm, which only pre-LN "
                             "has: set norm='pre' or first_layer_prenorm=True")
        self._validate_sparse()
        if self.has_local_layers and self.attention == "lsh" and self.sharing in ("all", "attention"):
            raise ValueError("attention='lsh' with local layers (global_every > 1) and shared attention: local "
                             "layers are windowed full attention, another module than LSH, so one module cannot "
                             "serve both; share nothing, or set global_every=1")

    def _validate_sparse(self) -> None:
        from core.model import ATTENTION

        if self.block_size < 1 or self.num_random_blocks < 0 or self.full_attn_threshold < 0:
            raise ValueError(f"block_size must be >= 1, num_random_blocks >= 0 and full_attn_threshold >= 0, got "
                             f"{self.block_size}, {self.num_random_blocks} and {self.full_attn_threshold}")
        if self.full_attn_threshold and not ATTENTION[self.attention].sparse:
            sparse = ", ".join(n for n in ATTENTION.names() if ATTENTION[n].sparse)
            raise ValueError(f"full_attn_threshold={self.full_attn_threshold} switches a sparse attention to full "
                             f"attention on short batches, and attention={self.attention!r} is full already: set "
                             f"attention to one of {sparse}, or full_attn_threshold=0")
        if self.attention == "local" and self.global_every > 1:
            raise ValueError(f"attention='local' makes every layer a sliding window, so global_every="
                             f"{self.global_every} changes nothing: set global_every=1 (every layer local), or "
                             "attention='full' with global_every > 1 (full attention in every k-th layer)")

    @property
    def has_local_layers(self) -> bool:
        return self.global_every > 1 and self.num_layers > 1

    def is_local(self, layer: int) -> bool:
        """Layer i is local (sliding window) unless i % global_every == 0 (ModernBERT: 0, 3, 6, ... global)."""
        return bool(layer % self.global_every)

    def to_dict(self) -> dict:
        """Every field, except later ones at their defaults (LATER_DEFAULTS)."""
        return {k: v for k, v in super().to_dict().items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def factorized(self) -> bool:
        return self.embedding_size != self.hidden_size

    def group_of_layer(self, layer: int) -> int:
        """ALBERT's rule: layer i uses parameter group i * G // L."""
        return layer * self.num_groups // self.num_layers

    # Derived fields follow their source on `replace`: overriding hidden_size on a config
    # whose intermediate_size was the automatic 4*H gives 4*(new H), not the stale value.
    _AUTO = {
        "intermediate_size": lambda c: auto_intermediate(c.hidden_size, c.ffn),
        "embedding_size": lambda c: c.hidden_size,
        "num_groups": lambda c: c.num_layers if c.sharing == "none" else 1,
    }

    def replace(self, **changes):  # type: ignore[override]
        self.check_keys(changes)
        data = StrictConfig.to_dict(self)
        for field, auto in self._AUTO.items():
            if field not in changes and data[field] == auto(self):
                data[field] = 0
        data.update(changes)
        return ModelConfig(**data)


def auto_intermediate(hidden: int, ffn: str) -> int:
    """4H for an MLP; for a GLU (three matrices) 8H/3 rounded up to a multiple of 8, which
    keeps the MLP's 8H^2 parameters (Shazeer 2020, NeoBERT)."""
    if ffn == "glu":
        return -(-hidden // 3) * 8  # ceil(8H / 3 / 8) * 8
    return 4 * hidden
