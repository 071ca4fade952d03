"""Conversion to and from HF transformers' BigBird (`BigBirdForPreTraining`, `BigBirdForMaskedLM`).

HF's BigBird is BERT's layout under BERT's names (`bert.encoder.layer.i.attention.self.query`,
`cls.predictions`, `cls.seq_relationship`) with three differences: the pooler is one linear
layer (`bert.pooler`, not `bert.pooler.dense`), the embeddings' dropout comes before their
LayerNorm (evaluation is identical) and the attention is block-sparse (`attention_type =
"block_sparse"`: `attention="bigbird"` here, with the same `block_size` and
`num_random_blocks`; `"original_full"` converts to `attention="full"`).

The random blocks. HF draws them with numpy, seeded by the layer index, on every forward in
training mode (the same blocks each time); in evaluation mode it sets every random block to
block 0 (a second copy of the first global block), so HF's own evaluation is not the block-
sparse function it trained. Ours are drawn per layer and head from a seeded torch generator
(`core.model.blocksparse.bigbird_random_blocks`) in training and evaluation alike, so a
converted model computes HF's function only given HF's blocks: `hf_random_blocks(hf_model, T)`
reads the blocks HF draws at T tokens, `model.set_random_blocks(...)` installs them. Given
them, hidden states agree within 1e-4 at 1,024 and 2,048 tokens, padding included
(tests/unit/core/model/test_block_sparse_attention.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.data import SEP
from core.extras import require
from core.interop.hf import _ACT_TO_HF, _hf_common, _name_map, config_from_hf
from core.model import ModelConfig, PretrainingModel

FEATURE = "converting to or from HF transformers' BigBird"
CLASSES = ("BigBirdForPreTraining", "BigBirdForMaskedLM")
_POOLER = ("sentence_head.pooler", "bert.pooler")


def bigbird_problems(cfg: ModelConfig) -> list[str]:
    """Why HF's BigBird cannot hold this model ([] when it can): BERT's layout with BigBird's attention."""
    needs = (("attention", "bigbird"), ("norm", "post"), ("reversible", False), ("sharing", "none"),
             ("positions", "learned"), ("ffn", "mlp"), ("norm_layer", "layernorm"), ("bias", True),
             ("norm_bias", True), ("global_every", 1), ("position_offset", 0), ("full_attn_threshold", 0))
    problems = [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in needs if getattr(cfg, k) != v]
    if cfg.factorized:
        problems.append(f"embedding_size={cfg.embedding_size} < hidden_size (BigBird does not factorize)")
    if cfg.type_vocab_size == 0:
        problems.append("type_vocab_size=0 (HF models always carry token-type embeddings)")
    if cfg.activation not in _ACT_TO_HF:
        problems.append(f"activation={cfg.activation!r}")
    return problems


def _names(cfg: ModelConfig) -> dict[str, str]:
    names = _name_map(cfg, "bert")
    if cfg.sentence_head:
        for part in ("weight", "bias"):
            names[f"{_POOLER[0]}.{part}"] = f"{_POOLER[1]}.{part}"
    return names


def config_from_hf_bigbird(c: Any, sentence_head: bool) -> ModelConfig:
    if getattr(c, "rescale_embeddings", False):
        raise ValueError("BigBird with rescale_embeddings=True (embeddings x sqrt(H)) has no equivalent here")
    if not getattr(c, "use_bias", True):
        raise ValueError("BigBird with use_bias=False (bias-free Q, K, V only) has no equivalent here")
    if getattr(c, "is_decoder", False):
        raise ValueError("BigBird as a decoder (is_decoder=True) has no equivalent here: this library's encoders "
                         "are bidirectional")
    cfg = config_from_hf(c, "bert", sentence_head)
    if c.attention_type == "original_full":
        return cfg
    return cfg.replace(attention="bigbird", block_size=c.block_size, num_random_blocks=c.num_random_blocks)


def from_hf_bigbird(hf_model: Any) -> PretrainingModel:
    name = type(hf_model).__name__
    if name not in CLASSES:
        raise ValueError(f"from_hf reads BigBird as {' or '.join(CLASSES)}, not {name}: load its save_pretrained "
                         "directory with load_arm, which initialises missing heads fresh")
    cfg = config_from_hf_bigbird(hf_model.config, name.endswith("ForPreTraining"))
    model = PretrainingModel(cfg)
    theirs = hf_model.state_dict()
    names = _names(cfg)
    absent = [v for v in names.values() if v not in theirs]
    if absent:
        raise ValueError(f"from_hf: {name} has no weight {absent[0]} (and {len(absent) - 1} more)")
    missing, unexpected = model.load_state_dict({k: theirs[v].detach().clone() for k, v in names.items()},
                                                strict=False)
    if missing or unexpected:
        raise RuntimeError(f"from_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    return model


def hf_config(cfg: ModelConfig) -> Any:
    tf = require("transformers", FEATURE)
    return tf.BigBirdConfig(**_hf_common(cfg), attention_type="block_sparse", block_size=cfg.block_size,
                            num_random_blocks=cfg.num_random_blocks, use_bias=True, rescale_embeddings=False,
                            sep_token_id=SEP)


def to_hf_bigbird(model: PretrainingModel) -> Any:
    """Our BigBird model as HF's BigBirdForPreTraining (with a sentence head) or BigBirdForMaskedLM."""
    problems = bigbird_problems(model.cfg)
    if problems:
        raise ValueError("to_hf cannot export this model as HF BigBird: " + "; ".join(problems))
    tf = require("transformers", FEATURE)
    cfg, ours = model.cfg, model.state_dict()
    cls = tf.BigBirdForPreTraining if cfg.sentence_head else tf.BigBirdForMaskedLM
    hf = cls(hf_config(cfg))
    missing, unexpected = hf.load_state_dict({v: ours[k].detach().clone() for k, v in _names(cfg).items()},
                                             strict=False)
    missing = [k for k in missing if not k.endswith(("decoder.weight", "decoder.bias"))
               and not (k.startswith("bert.pooler.") and not cfg.sentence_head)]  # BigBirdForMaskedLM's unused pooler
    if missing or unexpected:
        raise RuntimeError(f"to_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    hf.tie_weights()
    with torch.no_grad():  # the decoder shares the embedding table; its bias is ours
        hf.get_output_embeddings().bias.copy_(ours["mlm_head.bias"])
    return hf.eval()


class RecordRandomBlocks:
    """While active, records the random blocks every HF BigBird block-sparse layer draws:
    `.blocks[layer]` ((heads, blocks - 2, r), the last forward's), in layer order."""

    def __init__(self, hf_model: Any):
        self.model = hf_model
        self.blocks: dict[int, torch.Tensor] = {}

    def __enter__(self) -> RecordRandomBlocks:
        from transformers.models.big_bird import modeling_big_bird as mbb

        self._cls = mbb.BigBirdBlockSparseAttention
        self._original = self._cls.__dict__["_create_rand_mask_from_inputs"]
        original = self._original.__func__
        layers = [m for m in self.model.modules() if isinstance(m, self._cls)]
        calls = {"n": 0}

        def record(from_blocked_mask, to_blocked_mask, rand_attn, *args):
            self.blocks[calls["n"] % len(layers)] = rand_attn[0].detach().cpu().clone()
            calls["n"] += 1
            return original(from_blocked_mask, to_blocked_mask, rand_attn, *args)

        self._cls._create_rand_mask_from_inputs = staticmethod(record)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls._create_rand_mask_from_inputs = self._original


def hf_random_blocks(hf_model: Any, seq_len: int) -> dict[int, torch.Tensor]:
    """The random blocks HF's BigBird draws at `seq_len` tokens in training mode, per layer
    ((heads, blocks - 2, r) each), for `PretrainingModel.set_random_blocks`: one forward of a
    dummy batch in training mode, the model's mode and numpy's global random state restored."""
    c = hf_model.config
    if seq_len <= (5 + 2 * c.num_random_blocks) * c.block_size:
        raise ValueError(f"at {seq_len} tokens HF's BigBird runs full attention (<= (5 + 2r) x block_size = "
                         f"{(5 + 2 * c.num_random_blocks) * c.block_size}): it draws no random blocks")
    was_training, state = hf_model.training, np.random.get_state()
    ids = torch.full((1, seq_len), 5, dtype=torch.long, device=next(hf_model.parameters()).device)
    try:
        hf_model.train()
        with torch.no_grad(), RecordRandomBlocks(hf_model) as rec:
            hf_model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        hf_model.train(was_training)
        np.random.set_state(state)
    return rec.blocks
