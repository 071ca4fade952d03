"""Named variants: frozen presets of ModelConfig fields plus the data choices that
belong to each paper (sentence task, packing, masking).

A variant is data, not a subclass: `get_config("albert-reformer", size="mini")` is just
a ModelConfig, and an ablation arm is the same thing with a few fields overridden.

    build_model("roberta-lsh", size="mini")
    build_model("roberta-lsh-mini", vocab_size=30522)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.model import ModelConfig
from core.registry import unknown_name_error

if TYPE_CHECKING:  # imported where used: `list` and `show` start without torch
    from core.interop import LoadedArm
    from core.model import PretrainingModel

# name: (layers, hidden). Heads are H / 64 and the FFN 4H, as in BERT and its miniatures.
SIZES: Mapping[str, tuple[int, int]] = MappingProxyType({
    "tiny": (2, 128),
    # not one of Google's miniatures: 4 layers (enough for sharing to mean something) at the
    # width that leaves the unigram stage within a few hundred CPU steps (the CPU budgets)
    "micro": (4, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
})
DEFAULT_SIZE = "mini"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: Mapping[str, Any]                       # ModelConfig field overrides
    data: Mapping[str, Any] = field(default_factory=dict)  # DataConfig field overrides


_BERT_DATA = {"packing": "segment-pair", "sentence_task": "nsp", "masking": "static", "mask_unit": "token"}
_ALBERT_DATA = {"packing": "segment-pair", "sentence_task": "sop", "masking": "static", "mask_unit": "ngram", "max_ngram": 3}
_ROBERTA_DATA = {"packing": "full-sentences", "sentence_task": "none", "masking": "dynamic", "mask_unit": "token"}

_ALBERT = {"embedding_size": 128, "sharing": "all", "num_groups": 1}
_ROBERTA = {"type_vocab_size": 1, "position_offset": 2, "sentence_head": False}
_LSH = {"attention": "lsh"}
# long inputs: BigBird's block-sparse attention (64-token blocks, 3 random; HF BigBirdConfig's
# defaults) and a 128-token sliding window in every layer, each with BigBird's 4,096 positions
_BIGBIRD = {"attention": "bigbird", "block_size": 64, "num_random_blocks": 3, "max_position_embeddings": 4096}
_LOCAL = {"attention": "local", "local_window": 128, "max_position_embeddings": 4096}
_REVERSIBLE = {"norm": "pre", "reversible": True}

# today's encoders: no segment embeddings, no sentence task, pre-norm without biases,
# rotary positions, a gated feed-forward, no dropout (ModernBERT and NeoBERT train without)
_MODERN_DATA = {"packing": "full-sentences", "sentence_task": "none", "masking": "dynamic", "mask_unit": "token"}
_MODERN = {"type_vocab_size": 0, "sentence_head": False, "norm": "pre", "bias": False, "positions": "rope",
           "ffn": "glu", "hidden_dropout": 0.0, "attention_dropout": 0.0, "layer_norm_eps": 1e-5}
# ModernBERT (Warner et al. 2024): GeGLU, LayerNorm without biases whose embedding norm is
# layer 0's, a 128-token sliding window with a global layer every third, RoPE theta 160,000
# global and 10,000 local, 30% masking
_MODERNBERT = {**_MODERN, "norm_bias": False, "first_layer_prenorm": False, "activation": "gelu",
               "rope_theta": 160_000.0, "rope_theta_local": 10_000.0, "global_every": 3, "local_window": 128}
# NeoBERT (Le Breton et al. 2025): SwiGLU, RMSNorm, RoPE theta 10,000, every layer global, 20% masking
_NEOBERT = {**_MODERN, "norm_layer": "rmsnorm", "activation": "silu"}

_VARIANTS = [
    Variant("bert", "BERT: full attention, post-LN, NSP, static token masking", {}, _BERT_DATA),
    Variant("albert", "ALBERT: factorized E=128, all layers shared, SOP, n-gram masking",
            _ALBERT, _ALBERT_DATA),
    Variant("roberta", "RoBERTa: no sentence task, full-sentences packing, dynamic masking",
            _ROBERTA, _ROBERTA_DATA),
    Variant("reformer", "ReforBERT: BERT with LSH attention, reversible layers, chunked FFN",
            {**_LSH, **_REVERSIBLE, "ffn_chunks": 4}, _BERT_DATA),
    Variant("bert-lsh", "BERT with LSH attention in place of full attention", _LSH, _BERT_DATA),
    Variant("roberta-lsh", "RoBERTa with LSH attention in place of full attention",
            {**_ROBERTA, **_LSH}, _ROBERTA_DATA),
    Variant("bert-bigbird", "BERT with BigBird's block-sparse attention (global, band and random blocks), 4,096 "
            "positions", _BIGBIRD, _BERT_DATA),
    Variant("roberta-bigbird", "RoBERTa with BigBird's block-sparse attention, 4,096 positions",
            {**_ROBERTA, **_BIGBIRD}, _ROBERTA_DATA),
    Variant("bert-local", "BERT with a 128-token sliding window in every layer, 4,096 positions", _LOCAL, _BERT_DATA),
    Variant("albert-reformer", "ALBERT with LSH attention and reversible layers",
            {**_ALBERT, **_LSH, **_REVERSIBLE}, _ALBERT_DATA),
    Variant("modernbert", "ModernBERT: RoPE, GeGLU, pre-norm without biases, local/global attention, 30% masking",
            _MODERNBERT, {**_MODERN_DATA, "mask_prob": 0.3}),
    Variant("neobert", "NeoBERT: RoPE, SwiGLU, RMSNorm, pre-norm without biases, 20% masking",
            _NEOBERT, {**_MODERN_DATA, "mask_prob": 0.2}),
]
VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in _VARIANTS})


def list_variants() -> list[str]:
    return list(VARIANTS)


def parse_name(name: str, size: str | None = None) -> tuple[Variant, str]:
    """'roberta-lsh-mini' -> (roberta-lsh, mini); an explicit `size` must agree."""
    base, named_size = name, None
    for s in SIZES:
        if name.endswith("-" + s) and name[: -len(s) - 1] in VARIANTS:
            base, named_size = name[: -len(s) - 1], s
    if base not in VARIANTS:
        valid = list(VARIANTS) + [f"{v}-{s}" for v in VARIANTS for s in SIZES]
        raise unknown_name_error("variant", name, valid)
    if size is not None and size not in SIZES:
        raise unknown_name_error("size", size, SIZES)
    if named_size and size and named_size != size:
        raise ValueError(f"variant {name!r} names size {named_size!r} but size={size!r} was also given")
    return VARIANTS[base], size or named_size or DEFAULT_SIZE


def get_variant(name: str) -> Variant:
    return parse_name(name)[0]


def get_config(name: str, size: str | None = None, **overrides: Any) -> ModelConfig:
    """The ModelConfig a variant would build, without building it."""
    variant, size = parse_name(name, size)
    layers, hidden = SIZES[size]
    ModelConfig.check_keys(overrides)
    fields = {"num_layers": layers, "hidden_size": hidden, "num_heads": hidden // 64, **variant.model}
    fields.update(overrides)
    return ModelConfig(**fields)


def build_model(name: str, size: str | None = None, **overrides: Any) -> PretrainingModel:
    from core.model import PretrainingModel

    return PretrainingModel(get_config(name, size, **overrides))


def load(directory: str | Path) -> LoadedArm:
    """Any exported arm (HF or native format), a finished run's arm directory
    (RUN_DIR/arms/ARM/seed-K), or an HF directory that save_pretrained wrote after
    fine-tuning (its encoder loaded exactly; the pretraining heads it lacks initialised
    fresh and named in `.note`): `.model` (a PretrainingModel), `.tokenizer`, `.format`.
    The HF format needs transformers: pip install -e ".[hf]"."""
    from core.interop import load_arm

    return load_arm(directory)


__all__ = ["SIZES", "VARIANTS", "Variant", "build_model", "get_config", "get_variant", "list_variants", "load",
           "parse_name"]
