"""The pretraining data pipeline: corpus -> sentences -> SentencePiece ids -> examples -> masks.

Entry point: `build_dataset(DataConfig(...), corpus=path_or_None)` returns a
`PretrainingData` with train batches (static or dynamic masks) and held-out
evaluation batches with fixed masks.
"""
from core.data.config import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, DataConfig, DataError
from core.data.dataset import PretrainingData, build_dataset, corpus_source, vocab_for_corpus
from core.data.tokenizer import Tokenizer

__all__ = ["DataConfig", "DataError", "PretrainingData", "SPECIAL_TOKENS", "PAD", "UNK", "CLS", "SEP", "MASK",
           "Tokenizer", "build_dataset", "corpus_source", "vocab_for_corpus"]
