"""SentencePiece tokenizers trained on the user's corpus, with fixed special-token ids.

[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 in every model we train, so that the model
config and the masking code never have to ask. A loaded .model must have the same
layout; we check rather than assume.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import sentencepiece as spm

from core.data.config import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, DataConfig
from core.data.corpus import CorpusError
from core.files import atomic_write_bytes

WORD_START = "\u2581"  # "▁": SentencePiece marks the first piece of every word with it


class Tokenizer:
    def __init__(self, model_path: str | os.PathLike):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {self.path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        found = [self.sp.id_to_piece(i) for i in range(len(SPECIAL_TOKENS))]
        expected = ["<pad>" if t == "[PAD]" else "<unk>" if t == "[UNK]" else t for t in SPECIAL_TOKENS]
        if found != expected and found != list(SPECIAL_TOKENS):
            raise ValueError(
                f"{self.path}: special tokens at ids 0-4 are {found}, expected {list(SPECIAL_TOKENS)}; "
                "train it with this project (or pad_id=0 unk_id=1 and control symbols [CLS] [SEP] [MASK])"
            )
        self.vocab_size = self.sp.get_piece_size()
        # identity of the model file: cache keys of everything tokenised with it
        self.fingerprint = hashlib.sha1(self.path.read_bytes()).hexdigest()[:16]
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        # whole-word masking needs to know which pieces start a word
        self.word_start = np.array([p.startswith(WORD_START) for p in pieces], dtype=bool)
        self.word_start[: len(SPECIAL_TOKENS)] = True

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD, UNK, CLS, SEP, MASK

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]


def train_tokenizer(sentences: Iterator[str], out_path: Path, cfg: DataConfig, corpus_name: str) -> Tokenizer:
    """Train on up to cfg.tokenizer_max_sentences sentences; write atomically to out_path."""
    buffer = io.BytesIO()
    seen = 0

    def limited() -> Iterator[str]:
        nonlocal seen
        for s in sentences:
            if seen >= cfg.tokenizer_max_sentences:
                return
            seen += 1
            yield s

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=limited(), model_writer=buffer, vocab_size=cfg.vocab_size,
            model_type=cfg.tokenizer_type, character_coverage=cfg.character_coverage,
            pad_id=PAD, unk_id=UNK, bos_id=-1, eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]",
            control_symbols=["[CLS]", "[SEP]", "[MASK]"], num_threads=os.cpu_count() or 1,
            input_sentence_size=cfg.tokenizer_max_sentences, shuffle_input_sentence=True,
            max_sentence_length=1 << 14, minloglevel=2,
        )
    except RuntimeError as err:
        if seen == 0:
            raise CorpusError(f"corpus {corpus_name} is empty: no text found; check the path and format "
                              "(plain text, WikiExtractor or JSON lines with a \"text\" field)") from None
        if "Vocabulary size" in str(err) or "vocab_size" in str(err):
            raise CorpusError(
                f"the corpus ({corpus_name}, {seen} sentences) is too small for a vocabulary of "
                f"{cfg.vocab_size}: {err}. Lower vocab_size (--vocab-size) or use a larger corpus"
            ) from None
        raise
    atomic_write_bytes(out_path, buffer.getvalue())
    return Tokenizer(out_path)
