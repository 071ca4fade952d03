"""The pretraining data pipeline: corpus -> sentences -> SentencePiece ids -> examples -> masks.

Entry point: `build_dataset(DataConfig(...), corpus=path_or_None)` returns a
`PretrainingData` with train batches (static or dynamic masks) and held-out
evaluation batches with fixed masks.
"""

from core.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "core.data.config": ["CLS", "MASK", "PAD", "SEP", "SPECIAL_TOKENS", "UNK", "DataConfig", "DataError"],
    "core.data.dataset": ["PretrainingData", "build_dataset"],
    "core.data.source": ["corpus_source", "vocab_for_corpus"],
    "core.data.tokenizer": ["Tokenizer"],
})
