"""The pretraining data pipeline: corpus -> sentences -> SentencePiece ids -> examples -> masks.

Entry point: `build_dataset(DataConfig(...), corpus=path_or_None)` returns a
`PretrainingData` with train batches (static or dynamic masks) and held-out
evaluation batches with fixed masks.
"""
from core.data.config import DataConfig, SPECIAL_TOKENS, PAD, UNK, CLS, SEP, MASK

__all__ = ["DataConfig", "SPECIAL_TOKENS", "PAD", "UNK", "CLS", "SEP", "MASK", "build_dataset"]


def build_dataset(*args, **kwargs):
    from core.data.dataset import build_dataset as _build

    return _build(*args, **kwargs)
