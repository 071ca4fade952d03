"""The model: one validated `ModelConfig` assembles embeddings, an encoder and heads.

- `config`: `ModelConfig`, every architectural knob, validated and JSON round-tripping.
- `embeddings`: token, position and segment tables; the E→H projection when factorized.
- `attention`: the attention registry (`full` SDPA, `full-shared-qk`, `lsh` from
  reformer-pytorch).
- `encoder`: the layer stack with its sharing map, post-/pre-LN and reversible option.
- `heads`: the MLM head tied to the token table, and the pooler + sentence head.
- `dropout`: dropout with a cheap CPU mask (16 random bits per element, bool mask saved).
- `compiled`: opt-in `torch.compile` of the static-shape parts, with an eager fallback.
- `unpad`: `Packing`, the real tokens of a padded batch, so the encoder skips the pads.
- `pretraining`: `PretrainingModel`, the whole model with its losses.

Nothing here knows about data, training or measurement.
"""

from core.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "core.model.attention": ["ATTENTION"],
    "core.model.compiled": ["compile_model"],
    "core.model.config": ["ModelConfig"],
    "core.model.pretraining": ["IGNORE_INDEX", "PretrainingModel", "PretrainingOutput"],
})
