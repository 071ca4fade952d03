"""Masked-LM masking: token, whole-word and n-gram units; exact per-sequence budgets.

One function, `mask_sequence`, serves both modes: static masking calls it once per
dupe copy when the data is built; dynamic masking calls it in the collator with a
generator seeded by (seed, epoch, example), so masks are fresh every epoch yet a
resumed run sees exactly the masks it would have seen.
"""
from __future__ import annotations

import numpy as np

from core.data.config import FIRST_ORDINARY_ID, MASK, DataConfig


def ngram_probabilities(max_ngram: int) -> np.ndarray:
    """ALBERT: p(n) proportional to 1/n for n = 1..N."""
    p = 1.0 / np.arange(1, max_ngram + 1)
    return p / p.sum()


def word_units(ids: np.ndarray, candidate: np.ndarray, word_start: np.ndarray) -> list[np.ndarray]:
    """Group candidate positions into words: a piece starting with '▁' (or following a
    non-candidate such as [SEP]) opens a word; the pieces after it continue that word.
    For Korean, where a word is several pieces, this masks whole eojeol, which ALBERT's
    per-character rule would not."""
    positions = np.flatnonzero(candidate)
    if positions.size == 0:
        return []
    starts = word_start[ids[positions]]
    starts[0] = True
    starts[1:] |= positions[1:] != positions[:-1] + 1
    return np.split(positions, np.flatnonzero(starts)[1:])


def ngram_spans(words: list[np.ndarray], budget: int, max_ngram: int,
                rng: np.random.Generator) -> list[tuple[int, int]]:
    """ALBERT's n-gram masking: visit word starts in random order, draw n with p ∝ 1/n,
    shrink n until the span is free and fits the budget. Returns (first word, n) spans."""
    probs = ngram_probabilities(max_ngram)
    taken = np.zeros(len(words), dtype=bool)
    sizes = np.array([len(w) for w in words])
    spans, covered = [], 0
    for start in rng.permutation(len(words)):
        if covered >= budget:
            break
        n = min(int(rng.choice(max_ngram, p=probs)) + 1, len(words) - start)
        while n > 0 and (taken[start:start + n].any() or covered + sizes[start:start + n].sum() > budget):
            n -= 1
        if n:
            taken[start:start + n] = True
            covered += int(sizes[start:start + n].sum())
            spans.append((int(start), n))
    return spans


def select_positions(ids: np.ndarray, cfg: DataConfig, word_start: np.ndarray,
                     rng: np.random.Generator, mask_prob: float | None = None) -> np.ndarray:
    """The positions to mask: round(candidates x rate) of them (at least 1, at most
    cfg.max_predictions), the rate being `mask_prob` where a schedule gives one, else cfg's."""
    candidate = ids >= FIRST_ORDINARY_ID  # never [PAD] [UNK] [CLS] [SEP] [MASK]
    n_cand = int(candidate.sum())
    if n_cand == 0:
        return np.empty(0, dtype=np.int64)
    rate = cfg.mask_prob if mask_prob is None else mask_prob
    budget = min(cfg.max_predictions, max(1, int(round(n_cand * rate))))
    if cfg.mask_unit == "token":
        return np.sort(rng.choice(np.flatnonzero(candidate), size=budget, replace=False))
    words = word_units(ids, candidate, word_start)
    chosen: list[np.ndarray] = []
    covered = 0
    if cfg.mask_unit == "whole-word":
        for w in rng.permutation(len(words)):
            if covered + len(words[w]) <= budget:
                chosen.append(words[w])
                covered += len(words[w])
            if covered >= budget:
                break
    else:  # n-grams of whole words
        for start, n in ngram_spans(words, budget, cfg.max_ngram, rng):
            chosen.extend(words[start:start + n])
    if not chosen:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen))


def mask_sequence(ids: np.ndarray, cfg: DataConfig, word_start: np.ndarray, vocab_size: int,
                  rng: np.random.Generator, mask_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (masked copy of ids, masked positions). Labels are ids[positions]. `mask_prob`:
    the rate of a masking-rate schedule at this step (default: cfg.mask_prob)."""
    positions = select_positions(ids, cfg, word_start, rng, mask_prob)
    masked = ids.copy()
    if positions.size:
        r = rng.random(positions.size)
        to_mask = r < cfg.replace_prob
        to_random = (r >= cfg.replace_prob) & (r < cfg.replace_prob + cfg.random_prob)
        masked[positions[to_mask]] = MASK
        masked[positions[to_random]] = rng.integers(FIRST_ORDINARY_ID, vocab_size, int(to_random.sum()))
    return masked, positions
