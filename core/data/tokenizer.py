"""SentencePiece tokenizers trained on the user's corpus, with fixed special-token ids.

[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 in every model we train, so that the model
config and the masking code never have to ask. A loaded .model must have the same
layout; we check rather than assume.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import sentencepiece as spm

from core.data.config import CLS, DEFAULT_COVERAGE, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, DataConfig, DataError
from core.data.corpus import CorpusReport, empty_corpus_error
from core.errors import first_line
from core.files import atomic_write_bytes

# SentencePiece's max_sentence_length (in bytes): it drops longer sentences from training
MAX_SENTENCE_BYTES = 1 << 14
WORD_START = "\u2581"  # "▁": SentencePiece marks the first piece of every word with it


class TokenizerError(DataError):
    """A tokenizer the user gave or asked for cannot be used; the message names the fix."""


class Tokenizer:
    def __init__(self, model_path: str | os.PathLike):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {self.path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        found = [self.sp.id_to_piece(i) for i in range(len(SPECIAL_TOKENS))]
        expected = ["<pad>" if t == "[PAD]" else "<unk>" if t == "[UNK]" else t for t in SPECIAL_TOKENS]
        if found != expected and found != list(SPECIAL_TOKENS):
            raise TokenizerError(
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

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Ids and each piece's (begin, end) character span in the original text: what maps
        character-level labels (NER) onto pieces. A character that normalisation expands
        into several pieces (NFKC: "㈜" -> "(주)") is covered by the last; the others are empty."""
        return [(r["ids"], [tuple(o) for o in r["offsets"]]) for r in self.sp.encode_as_offset_mapping(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    try:
        return Tokenizer(path)
    except RuntimeError as err:  # sentencepiece: "could not parse ModelProto"
        raise TokenizerError(f"{path} is not a SentencePiece model ({first_line(err, 120)}); "
                             "give the .model file that SentencePiece wrote, or omit --tokenizer to train one") from None


def _limited(sentences: Iterable[str], limit: int, counter: list, failure: list | None = None) -> Iterator[str]:
    """At most `limit` sentences, counted in counter[0] (those SentencePiece will drop as too
    long in counter[1]). SentencePiece turns an exception raised inside its iterator into
    an opaque RuntimeError, so the reader's own error is kept aside."""
    try:
        for s in sentences:
            if counter[0] >= limit:
                return
            counter[0] += 1
            if len(s) > MAX_SENTENCE_BYTES // 4 and len(s.encode()) > MAX_SENTENCE_BYTES:
                counter[1] += 1
            yield s
    except DataError as err:
        if failure is None:
            raise
        failure.append(err)
        raise


MIN_COVERAGE = 0.98  # SentencePiece refuses a lower character_coverage


def character_counts(sentences: Iterable[str]) -> Counter:
    return Counter(ch for s in sentences for ch in s if not ch.isspace())


def characters_needed(counts: Counter, coverage: float = DEFAULT_COVERAGE) -> int:
    """How many of the most frequent characters cover `coverage` of the text: the pieces
    SentencePiece must reserve for single characters at that coverage."""
    total, covered = sum(counts.values()), 0
    for k, (_, n) in enumerate(counts.most_common(), 1):
        covered += n
        if covered >= coverage * total:
            return k
    return len(counts)


def auto_coverage(counts: Counter, vocab_size: int, default: float = DEFAULT_COVERAGE) -> float:
    """SentencePiece's character coverage for `character_coverage=0` ("automatic"): the
    default when the characters it keeps fit in half the vocabulary, else the coverage of
    the vocab_size // 2 most frequent characters, but never below SentencePiece's 0.98."""
    total = sum(counts.values())
    if not total or characters_needed(counts, default) <= vocab_size // 2:
        return default
    top = sum(n for _, n in counts.most_common(vocab_size // 2))
    return max(MIN_COVERAGE, min(default, top / total))


def _explain(err: RuntimeError, cfg: DataConfig, coverage: float, corpus_name: str, seen: int, too_long: int,
             report: CorpusReport | None) -> DataError:
    msg = str(err)
    if seen == 0:
        return empty_corpus_error(corpus_name, report)
    if too_long == seen:  # SentencePiece dropped them all and says only "!sentences_.empty()"
        where = (f"; the longest line, {report.longest_at}, is {report.longest_line:,} bytes"
                 if report is not None and report.longest_at else "")
        return TokenizerError(
            f"corpus {corpus_name}: every sentence ({seen}) is longer than SentencePiece's limit of "
            f"{MAX_SENTENCE_BYTES} bytes (max_sentence_length), so none is left to train on{where}; break such "
            "lines into paragraphs or sentences, one per line (a sentence ends at . ! ? or a line break)")
    chars = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", msg)
    if chars:
        need = int(chars.group(2))
        return TokenizerError(
            f"corpus {corpus_name} has {need} distinct characters at character_coverage={coverage}, more than "
            f"vocab_size={cfg.vocab_size} can hold; use --vocab-size {_round_up(need)} or more, or a lower "
            "character coverage (data.character_coverage, 0.98 to 1; 0 chooses it automatically)")
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", msg)
    if too_high:
        return TokenizerError(
            f"corpus {corpus_name} ({seen} sentences) is too small for a vocabulary of {cfg.vocab_size}: it "
            f"supports at most {too_high.group(2)} pieces; use --vocab-size {too_high.group(2)} or less, or a "
            "larger corpus")
    return TokenizerError(f"SentencePiece failed on corpus {corpus_name}: {first_line(err, 300)}")


def _round_up(chars: int) -> int:
    """A vocabulary with room for `chars` single characters and as many longer pieces."""
    return -(-2 * chars // 500) * 500


def vocab_for(counts: Counter, at_least: int) -> int:
    """The smallest round vocabulary (>= at_least) that holds a corpus's characters at the
    default coverage: what quick mode uses, so a smoke test never fails on Korean."""
    return max(at_least, -(-(characters_needed(counts) + 250) // 500) * 500)


def train_tokenizer(sentences: Callable[[], Iterator[str]], out_path: Path, cfg: DataConfig, corpus_name: str,
                    report: CorpusReport | None = None) -> Tokenizer:
    """Train on up to cfg.tokenizer_max_sentences sentences (`sentences()` streams them,
    called twice when the coverage is automatic); write atomically to out_path."""
    coverage = cfg.character_coverage
    if coverage == 0:
        coverage = auto_coverage(character_counts(_limited(sentences(), cfg.tokenizer_max_sentences, [0, 0])),
                                 cfg.vocab_size)
    buffer, seen, failure = io.BytesIO(), [0, 0], []
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_limited(sentences(), cfg.tokenizer_max_sentences, seen, failure), model_writer=buffer,
            vocab_size=cfg.vocab_size, model_type=cfg.tokenizer_type, character_coverage=coverage,
            pad_id=PAD, unk_id=UNK, bos_id=-1, eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]",
            control_symbols=["[CLS]", "[SEP]", "[MASK]"], num_threads=os.cpu_count() or 1,
            input_sentence_size=cfg.tokenizer_max_sentences, shuffle_input_sentence=True,
            max_sentence_length=MAX_SENTENCE_BYTES, minloglevel=2,
        )
    except RuntimeError as err:
        if failure:
            raise failure[0] from None
        raise _explain(err, cfg, coverage, corpus_name, seen[0], seen[1], report) from None
    atomic_write_bytes(out_path, buffer.getvalue())
    return Tokenizer(out_path)
