"""Example building: packing modes x sentence tasks, seeded and reproducible.

Input is a tokenised corpus in compact arrays (`TokenStore`): every sentence is a slice
of one flat token array, every document a range of sentences. Output is a list of
(ids, type_start, sentence_label) where ids already hold [CLS]/[SEP], type_start is the
index where segment B begins (0 = single segment), and the label is -100 without a task.

Label conventions follow HF: NSP 0 = B continues A, 1 = B is from another document;
SOP 0 = original order, 1 = swapped.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.data.config import CLS, SEP, DataConfig

IGNORE = -100


@dataclass
class TokenStore:
    tokens: np.ndarray        # flat token ids
    sent_offsets: np.ndarray  # (n_sentences + 1,)
    doc_offsets: np.ndarray   # (n_documents + 1,) into sentences

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    def doc(self, d: int) -> list[np.ndarray]:
        s0, s1 = self.doc_offsets[d], self.doc_offsets[d + 1]
        return [self.tokens[self.sent_offsets[s]:self.sent_offsets[s + 1]] for s in range(s0, s1)]


@dataclass
class Example:
    ids: np.ndarray
    type_start: int
    label: int
    a_doc: int = -1   # provenance, for the invariants tests: which documents A and B came from
    b_doc: int = -1


def _pieces(doc: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """Split sentences longer than `limit` so that every piece fits one segment."""
    out = []
    for s in doc:
        if len(s) == 0:
            continue
        for i in range(0, len(s), limit):
            out.append(s[i:i + limit])
    return out


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> None:
    """BERT: drop tokens from a random end of the longer segment until the pair fits."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _pair(a: list[int], b: list[int], label: int, a_doc: int, b_doc: int) -> Example:
    ids = np.array([CLS, *a, SEP, *b, SEP], dtype=np.int64)
    return Example(ids, len(a) + 2, label, a_doc, b_doc)


def _single(tokens: list[int]) -> Example:
    return Example(np.array([CLS, *tokens, SEP], dtype=np.int64), 0, IGNORE)


def _random_other_doc(doc_ids: list[int], d: int, rng: random.Random) -> int:
    for _ in range(10):
        other = doc_ids[rng.randrange(len(doc_ids))]
        if other != d:
            return other
    raise ValueError("NSP needs at least two documents in each split; use a larger corpus")


def _segment_pairs(store: TokenStore, doc_ids: list[int], d: int, cfg: DataConfig,
                   rng: random.Random, whole_sentences: bool) -> Iterator[Example]:
    """BERT's create_instances_from_document; with whole_sentences=True each segment is a
    single sentence (RoBERTa's SENTENCE-PAIR)."""
    max_tokens = cfg.max_length - 3
    doc = _pieces(store.doc(d), max_tokens - 1)
    target = _target_length(cfg, rng, whole_sentences, max_tokens)
    chunk: list[np.ndarray] = []
    length = 0
    i = 0
    while i < len(doc):
        chunk.append(doc[i])
        length += len(doc[i])
        full = len(chunk) == 2 if whole_sentences else length >= target
        if i == len(doc) - 1 or full:
            a_end = 1 if whole_sentences or len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
            a = [int(t) for s in chunk[:a_end] for t in s]
            b = [int(t) for s in chunk[a_end:] for t in s]
            label, b_doc = IGNORE, d
            if cfg.sentence_task == "nsp":
                label = 0
                if len(chunk) == 1 or rng.random() < 0.5:  # BERT: a lone segment gets a random B
                    label = 1
                    b, b_doc = _random_b(store, doc_ids, d, rng, max_tokens, max(1, target - len(a)),
                                         whole_sentences)
                    i -= len(chunk) - a_end  # unused segments go back into the pool
            if not b:  # one piece only: split it so that both segments are non-empty
                if len(a) < 2:
                    chunk, length = [], 0
                    i += 1
                    continue
                cut = rng.randint(1, len(a) - 1)
                a, b = a[:cut], a[cut:]
            if cfg.sentence_task == "sop":
                label = 0
                if rng.random() < 0.5:
                    a, b, label = b, a, 1
            _truncate_pair(a, b, max_tokens, rng)
            yield _pair(a, b, label, d, b_doc)
            chunk, length = [], 0
            target = _target_length(cfg, rng, whole_sentences, max_tokens)
        i += 1


def _target_length(cfg: DataConfig, rng: random.Random, whole_sentences: bool, max_tokens: int) -> int:
    """BERT's target length: usually the maximum, sometimes (short_seq_prob) shorter."""
    if not whole_sentences and rng.random() < cfg.short_seq_prob:
        return rng.randint(2, max_tokens)
    return max_tokens


def _random_b(store: TokenStore, doc_ids: list[int], d: int, rng: random.Random, max_tokens: int, want: int,
              whole_sentences: bool) -> tuple[list[int], int]:
    """NSP's negative: a B segment of about `want` tokens from a random other document."""
    b_doc = _random_other_doc(doc_ids, d, rng)
    other = _pieces(store.doc(b_doc), max_tokens - 1)
    start = rng.randrange(len(other))
    b: list[int] = []
    for s in other[start:]:
        b.extend(int(t) for t in s)
        if whole_sentences or len(b) >= want:
            break
    return b, b_doc


def _filled(store: TokenStore, doc_ids: list[int], cfg: DataConfig,
            cross_documents: bool) -> Iterator[Example]:
    """RoBERTa's FULL-SENTENCES (cross_documents) and DOC-SENTENCES: fill each input with
    whole consecutive sentences; documents are separated by an extra [SEP]."""
    budget = cfg.max_length - 2
    buf: list[int] = []
    for d in doc_ids:
        for s in _pieces(store.doc(d), budget):
            if buf and len(buf) + len(s) > budget:
                yield _single(buf)
                buf = []
            buf.extend(int(t) for t in s)
        if cross_documents:
            if buf and len(buf) < budget:
                buf.append(SEP)
        elif buf:
            yield _single(buf)
            buf = []
    if buf:
        yield _single(buf)


def build_examples(store: TokenStore, doc_ids: list[int], cfg: DataConfig, seed: int,
                   packing: str | None = None, sentence_task: str | None = None) -> Iterator[Example]:
    """Stream examples for the documents `doc_ids` (one split) in a seeded order."""
    if packing or sentence_task:
        cfg = cfg.replace(packing=packing or cfg.packing, sentence_task=sentence_task or cfg.sentence_task)
    rng = random.Random(seed)
    order = list(doc_ids)
    rng.shuffle(order)
    if cfg.packing in ("full-sentences", "doc-sentences"):
        yield from _filled(store, order, cfg, cross_documents=cfg.packing == "full-sentences")
        return
    for d in order:
        yield from _segment_pairs(store, doc_ids, d, cfg, rng, whole_sentences=cfg.packing == "sentence-pair")
