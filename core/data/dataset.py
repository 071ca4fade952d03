"""The `PretrainingData` object (batches and statistics) and `build_dataset`, which
assembles it from a corpus (`core.data.source`) and the cached layers of `core.data.cache`:
the tokenizer and the tokenised corpus (`core.data.token_cache`), then the example sets
(`core.data.example_cache`).

Evaluation batches always use the held-out sets' one fixed mask copy, whatever the
training masking mode, so every arm of an ablation is scored on the same predictions.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from core.data.cache import default_cache_dir
from core.data.config import FIRST_ORDINARY_ID, MASK, PAD, UNK, DataConfig
from core.data.example_cache import ExampleSet, load_or_build_examples
from core.data.example_cache import split_documents as split_documents  # benchmarks/bench_data.py imports it here
from core.data.examples import IGNORE, TokenStore
from core.data.masking import mask_sequence
from core.data.source import corpus_source
from core.data.token_cache import load_or_build_store, load_or_train_tokenizer
from core.data.tokenizer import Tokenizer


# -- the public object ---------------------------------------------------------------------------
class PretrainingData:
    def __init__(self, cfg: DataConfig, tokenizer: Tokenizer, corpus_name: str, corpus_report: dict,
                 store: TokenStore, train: ExampleSet, evals: dict[str, ExampleSet], meta: dict):
        self.cfg, self.tokenizer, self.corpus_name = cfg, tokenizer, corpus_name
        self.corpus_report, self.store, self.train, self.evals, self.meta = corpus_report, store, train, evals, meta
        self.fingerprint = ""  # set by build_dataset: the identity of corpus, tokenizer and config

    # batches -----------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        # the last epoch's order is kept: a distributed trainer asks for single batches
        cached = getattr(self, "_order", None)
        if cached is None or cached[0] != epoch:
            self._order = cached = (epoch, np.random.default_rng([self.cfg.seed, 7, epoch]).permutation(len(self.train)))
        return cached[1]

    def train_batch(self, batch_size: int, index: int, mask_prob: float | None = None) -> dict:
        """Batch `index` of the endless stream that `train_batches` yields (epochs laid end
        to end), without building the batches before it; `mask_prob`: a masking-rate
        schedule's rate for this step (dynamic masking)."""
        epoch, b = divmod(index, self._per_epoch(batch_size))
        order = self.epoch_order(epoch)
        return self.collate(self.train, order[b * batch_size:(b + 1) * batch_size], epoch=epoch, mask_prob=mask_prob)

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self.train) // batch_size

    def _per_epoch(self, batch_size: int) -> int:
        per_epoch = self.batches_per_epoch(batch_size)
        if per_epoch == 0:
            raise ValueError(f"batch_size={batch_size} exceeds the {len(self.train)} training examples; "
                             "lower --batch-size or use a larger corpus")
        return per_epoch

    def train_batches(self, batch_size: int, epoch: int = 0, start: int = 0) -> Iterator[tuple[int, int, dict]]:
        """Endless (epoch, index_in_epoch, batch); resume by passing the saved position."""
        per_epoch = self._per_epoch(batch_size)
        while True:
            order = self.epoch_order(epoch)
            for b in range(start, per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                yield epoch, b, self.collate(self.train, idx, epoch=epoch)
            epoch, start = epoch + 1, 0

    def label_log_probs(self, smoothing: float = 0.5) -> np.ndarray:
        """log p(token) over the training split's ordinary tokens (what masked labels are drawn
        from), add-`smoothing` so that no token is impossible; special tokens, never labels, get
        the smallest probability. The prior an MLM output bias can start at: the training split
        only, the same for every arm of one data configuration."""
        cached = getattr(self, "_label_log_probs", None)
        if cached is not None and cached[0] == smoothing:
            return cached[1]
        counts = np.bincount(self.train.ids, minlength=self.tokenizer.vocab_size)[:self.tokenizer.vocab_size]
        counts = counts.astype(np.float64)
        counts[:FIRST_ORDINARY_ID] = 0.0
        counts[FIRST_ORDINARY_ID:] += smoothing
        counts[:FIRST_ORDINARY_ID] = min(smoothing, counts[FIRST_ORDINARY_ID:].min())
        self._label_log_probs = (smoothing, np.log(counts / counts.sum()))
        return self._label_log_probs[1]

    def eval_batches(self, which: str = "mlm", batch_size: int = 32, limit: int | None = None) -> Iterator[dict]:
        """Held-out batches with fixed masks; `limit` takes the first examples only."""
        es = self.evals[which]
        n = len(es) if not limit else min(limit, len(es))
        for s in range(0, n, batch_size):
            yield self.collate(es, np.arange(s, min(s + batch_size, n)), copy=0)

    def collate(self, es: ExampleSet, indices: np.ndarray, epoch: int = 0, copy: int | None = None,
                mask_prob: float | None = None) -> dict:
        """The batch of `indices` of `es`: static masks (copy `copy`, else the epoch's), or
        dynamic ones drawn at `mask_prob` (default: the config's rate)."""
        B = len(indices)
        rows = []
        for i in indices:
            i = int(i)
            ids = es.example(i).astype(np.int64)
            if es.masks:
                k = copy if copy is not None else epoch % len(es.masks)
                masked, pos = es.masked(i, k)
                masked = masked.astype(np.int64)
            else:  # dynamic: fresh masks per epoch, reproducible from (seed, epoch, example)
                rng = np.random.default_rng([self.cfg.seed, 11, epoch, i])
                masked, pos = mask_sequence(ids, self.cfg, self.tokenizer.word_start, self.tokenizer.vocab_size, rng,
                                            mask_prob)
            rows.append((ids, masked, pos, int(es.type_start[i])))
        T = max(len(r[0]) for r in rows)
        input_ids = np.full((B, T), PAD, dtype=np.int64)
        labels = np.full((B, T), IGNORE, dtype=np.int64)
        types = np.zeros((B, T), dtype=np.int64)
        attn = np.zeros((B, T), dtype=np.int64)
        for r, (ids, masked, pos, ts) in enumerate(rows):
            input_ids[r, :len(ids)] = masked
            labels[r, pos] = ids[pos]
            attn[r, :len(ids)] = 1
            if ts:
                types[r, ts:len(ids)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attn),
                 "token_type_ids": torch.from_numpy(types), "mlm_labels": torch.from_numpy(labels)}
        sent = es.labels[indices]
        if (sent != IGNORE).all():
            batch["sentence_labels"] = torch.from_numpy(sent.astype(np.int64))
        return batch

    # statistics --------------------------------------------------------------------------------
    def stats(self, sample: int = 5000) -> dict:
        tr = self.train
        n_tok = int(tr.offsets[-1])
        lengths = np.diff(tr.offsets)
        tokens = self.store.tokens
        chunk = 1 << 24  # count in slices: a memory-mapped corpus may not fit in memory
        unk = sum(int((tokens[i:i + chunk] == UNK).sum()) for i in range(0, len(tokens), chunk))
        replaced = kept = masked_total = candidates = 0
        n = min(len(tr), sample)  # masking figures from a sample: they are rates
        for i in np.random.default_rng(0).choice(len(tr), size=n, replace=False) if n else []:
            i = int(i)
            ids = tr.example(i).astype(np.int64)
            if tr.masks:
                masked, pos = tr.masked(i, 0)
                masked = masked.astype(np.int64)
            else:
                rng = np.random.default_rng([self.cfg.seed, 11, 0, i])
                masked, pos = mask_sequence(ids, self.cfg, self.tokenizer.word_start, self.tokenizer.vocab_size, rng)
            candidates += int((ids >= FIRST_ORDINARY_ID).sum())
            masked_total += len(pos)
            replaced += int((masked[pos] == MASK).sum())
            kept += int((masked[pos] == ids[pos]).sum())
        random_ = masked_total - replaced - kept
        labels = tr.labels[tr.labels != IGNORE]
        frac = lambda a, b: round(a / b, 6) if b else None  # noqa: E731
        return {
            "corpus": self.corpus_name,
            "documents": int(self.store.n_docs),
            "sentences": int(len(self.store.sent_offsets) - 1),
            "examples": int(len(tr)),
            "eval_examples": {k: len(v) for k, v in self.evals.items()},
            "tokens": n_tok,
            "mean_length": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
            "max_length": int(lengths.max()) if len(lengths) else 0,
            "unk_rate": frac(unk, len(tokens)),
            "mask_rate": frac(masked_total, candidates),
            "replace_frac": frac(replaced, masked_total),
            "random_frac": frac(random_, masked_total),
            "keep_frac": frac(kept, masked_total),
            "sentence_label_balance": frac(int((labels == 1).sum()), len(labels)),
            "skipped_lines": self.corpus_report.get("skipped_lines", 0),
            "first_skipped": self.corpus_report.get("first_skipped", ""),
            "unclosed_docs": self.corpus_report.get("unclosed_docs", 0),
            "first_unclosed": self.corpus_report.get("first_unclosed", ""),
            "control_chars": self.corpus_report.get("control_chars", 0),
            "first_control": self.corpus_report.get("first_control", ""),
        }


def build_dataset(cfg: DataConfig, corpus: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None) -> PretrainingData:
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    src = corpus_source(corpus, cfg.text_column, cfg.sentence_splitter)
    tok = load_or_train_tokenizer(src, cfg, cache)
    store, report = load_or_build_store(src, tok, cache)
    examples = load_or_build_examples(src, store, tok, cfg, cache)
    data = PretrainingData(cfg, tok, src.name, report, store, examples.train, examples.evals, examples.meta)
    data.fingerprint = examples.key  # corpus, tokenizer and data config: what the examples came from
    return data
