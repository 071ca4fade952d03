"""Conversion to and from HF transformers' ModernBERT (`ModernBertForMaskedLM`).

A pre-norm model with rotary positions, a GLU feed-forward, no segment embeddings and
layer 0 reading the embedding norm (`first_layer_prenorm=False`) is ModernBERT's layout:

    ours                                   HF ModernBertForMaskedLM
    embeddings.word / .norm                model.embeddings.tok_embeddings / .norm
    encoder.attention.i.norm (i > 0)       model.layers.i.attn_norm  (layer 0: Identity)
    encoder.attention.i.fn.query|key|value model.layers.i.attn.Wqkv  (rows: q, then k, then v)
    encoder.attention.i.fn.out             model.layers.i.attn.Wo
    encoder.ffn.i.norm                     model.layers.i.mlp_norm
    encoder.ffn.i.fn.fn.fc1 / fc2          model.layers.i.mlp.Wi (value, then gate) / .Wo
    encoder.final_norm                     model.final_norm
    mlm_head.dense / .norm / .bias         head.dense / head.norm / decoder.bias (decoder tied)

Layer i is HF's "sliding_attention" when i % global_every != 0, with local_attention =
local_window (a token sees local_window // 2 on either side in both) and the local rotary
theta; the others "full_attention" with the global theta. Biases: `bias` is HF's
attention_bias, mlp_bias and classifier_bias together, `norm_bias` its norm_bias.
Dropout sits in other places (HF: embedding_dropout, attention_dropout, mlp_dropout; ours:
hidden_dropout on embeddings and residual branches, attention_dropout on probabilities):
evaluation is identical, training draws other masks.
"""
from __future__ import annotations

from typing import Any

import torch

from core.data import CLS, SEP
from core.extras import require
from core.model import ModelConfig, PretrainingModel

FEATURE = "converting to or from HF transformers' ModernBERT"
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "silu": "silu"}
_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu",
                "swish": "silu"}
# what ModernBERT's layout needs of a ModelConfig: (field, value)
_NEEDS = (("norm", "pre"), ("positions", "rope"), ("ffn", "glu"), ("attention", "full"), ("reversible", False),
          ("sharing", "none"), ("type_vocab_size", 0), ("sentence_head", False), ("first_layer_prenorm", False),
          ("norm_layer", "layernorm"), ("position_offset", 0))


def modernbert_problems(cfg: ModelConfig) -> list[str]:
    """Why HF's ModernBERT cannot hold this pre-norm model ([] when it can)."""
    problems = [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in _NEEDS if getattr(cfg, k) != v]
    if cfg.factorized:
        problems.append(f"embedding_size={cfg.embedding_size} < hidden_size (ModernBERT does not factorize)")
    if cfg.activation not in _ACT_TO_HF:
        problems.append(f"activation={cfg.activation!r}")
    return problems


def _layer_types(cfg: ModelConfig) -> list[str]:
    return ["sliding_attention" if cfg.is_local(i) else "full_attention" for i in range(cfg.num_layers)]


def hf_config(cfg: ModelConfig) -> Any:
    tf = require("transformers", FEATURE)
    local_theta = cfg.rope_theta_local or cfg.rope_theta
    return tf.ModernBertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        hidden_activation=_ACT_TO_HF[cfg.activation], classifier_activation=_ACT_TO_HF[cfg.activation],
        max_position_embeddings=cfg.max_position_embeddings, initializer_range=cfg.initializer_range,
        norm_eps=cfg.layer_norm_eps, norm_bias=cfg.norm_bias, attention_bias=cfg.bias, mlp_bias=cfg.bias,
        classifier_bias=cfg.bias, decoder_bias=True, layer_types=_layer_types(cfg), local_attention=cfg.local_window,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": cfg.rope_theta},
                         "sliding_attention": {"rope_type": "default", "rope_theta": local_theta}},
        embedding_dropout=cfg.hidden_dropout, mlp_dropout=0.0, attention_dropout=cfg.attention_dropout,
        pad_token_id=cfg.pad_token_id, bos_token_id=CLS, eos_token_id=SEP, cls_token_id=CLS, sep_token_id=SEP,
    )


def config_from_hf(c: Any) -> ModelConfig:
    """Our ModelConfig of an HF ModernBertConfig."""
    types = list(c.layer_types)
    local = [i for i, t in enumerate(types) if t == "sliding_attention"]
    every = _global_every(types)
    rope = c.rope_parameters
    act = c.hidden_activation
    if act not in _ACT_FROM_HF or _ACT_FROM_HF.get(c.classifier_activation) != _ACT_FROM_HF[act]:
        raise ValueError(f"ModernBERT with hidden_activation {act!r} and classifier_activation "
                         f"{c.classifier_activation!r}: this library uses one activation for both, from "
                         f"{sorted(_ACT_FROM_HF)}")
    if not (c.attention_bias == c.mlp_bias == c.classifier_bias) or not c.decoder_bias:
        raise ValueError("ModernBERT with attention_bias, mlp_bias and classifier_bias differing (or no decoder "
                         "bias) has no equivalent here: `bias` sets the three together")
    return ModelConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings, type_vocab_size=0, pad_token_id=c.pad_token_id or 0,
        norm="pre", norm_layer="layernorm", bias=bool(c.attention_bias), norm_bias=bool(c.norm_bias),
        first_layer_prenorm=False, activation=_ACT_FROM_HF[act], ffn="glu", positions="rope",
        rope_theta=float(rope["full_attention"]["rope_theta"]),
        rope_theta_local=float(rope["sliding_attention"]["rope_theta"]) if local else 0.0,
        global_every=every, local_window=c.local_attention, sentence_head=False,
        hidden_dropout=float(c.embedding_dropout), attention_dropout=float(c.attention_dropout),
        layer_norm_eps=c.norm_eps, initializer_range=c.initializer_range,
    )


def _global_every(types: list[str]) -> int:
    """k such that layer i is global exactly when i % k == 0; other patterns are refused."""
    globals_ = [i for i, t in enumerate(types) if t == "full_attention"]
    if len(globals_) == len(types):
        return 1
    k = globals_[1] - globals_[0] if len(globals_) > 1 else len(types)
    if globals_[0] != 0 or any(("full_attention" if i % k == 0 else "sliding_attention") != t
                               for i, t in enumerate(types)):
        raise ValueError(f"ModernBERT layer_types {types}: this library places global layers at i % k == 0 "
                         "(global_every = k); other patterns have no equivalent here")
    return k


def _pairs(cfg: ModelConfig) -> list[tuple[list[str], str]]:
    """(our names, HF name): several of ours make one of theirs where HF fuses (Wqkv)."""
    out: list[tuple[list[str], str]] = []

    def add(ours: str, theirs: str, bias: bool) -> None:
        out.append(([ours + ".weight"], theirs + ".weight"))
        if bias:
            out.append(([ours + ".bias"], theirs + ".bias"))

    add("embeddings.word", "model.embeddings.tok_embeddings", False)
    add("embeddings.norm", "model.embeddings.norm", cfg.norm_bias)
    for i in range(cfg.num_layers):
        layer = f"model.layers.{i}"
        if i > 0:
            add(f"encoder.attention.{i}.norm", f"{layer}.attn_norm", cfg.norm_bias)
        fn = f"encoder.attention.{i}.fn"
        out.append(([f"{fn}.{q}.weight" for q in ("query", "key", "value")], f"{layer}.attn.Wqkv.weight"))
        if cfg.bias:
            out.append(([f"{fn}.{q}.bias" for q in ("query", "key", "value")], f"{layer}.attn.Wqkv.bias"))
        add(f"{fn}.out", f"{layer}.attn.Wo", cfg.bias)
        add(f"encoder.ffn.{i}.norm", f"{layer}.mlp_norm", cfg.norm_bias)
        add(f"encoder.ffn.{i}.fn.fn.fc1", f"{layer}.mlp.Wi", cfg.bias)
        add(f"encoder.ffn.{i}.fn.fn.fc2", f"{layer}.mlp.Wo", cfg.bias)
    add("encoder.final_norm", "model.final_norm", cfg.norm_bias)
    add("mlm_head.dense", "head.dense", cfg.bias)
    add("mlm_head.norm", "head.norm", cfg.norm_bias)
    out.append((["mlm_head.bias"], "decoder.bias"))
    return out


def from_hf_modernbert(hf_model: Any) -> PretrainingModel:
    if type(hf_model).__name__ != "ModernBertForMaskedLM":
        raise ValueError(f"from_hf reads ModernBERT as ModernBertForMaskedLM, not {type(hf_model).__name__}: "
                         "load its save_pretrained directory with load_arm, which initialises missing heads fresh")
    cfg = config_from_hf(hf_model.config)
    model = PretrainingModel(cfg)
    theirs = hf_model.state_dict()
    ours = {}
    for names, name in _pairs(cfg):
        for mine, part in zip(names, theirs[name].detach().clone().chunk(len(names), dim=0)):
            ours[mine] = part.contiguous()
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"from_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    return model


def to_hf_modernbert(model: PretrainingModel) -> Any:
    tf = require("transformers", FEATURE)
    cfg, ours = model.cfg, model.state_dict()
    hf = tf.ModernBertForMaskedLM(hf_config(cfg))
    theirs = {name: torch.cat([ours[n].detach() for n in names], dim=0) for names, name in _pairs(cfg)}
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    missing = [k for k in missing if k != "decoder.weight"]  # tied to the token table
    if missing or unexpected:
        raise RuntimeError(f"to_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    hf.tie_weights()
    return hf.eval()


# which of ModernBERT's HF weights belong to a head: named when a checkpoint lacks them
HEADS = {"MLM head": ("head.", "decoder.")}
