"""Cache layer 3 (`core.data.cache`): the train and held-out example sets of one DataConfig.

Held-out documents are chosen per document before any example is built, so no
sentence of an evaluation example was ever seen in training. Evaluation masks are fixed
(one seeded copy), whatever the training masking mode, so every arm of an ablation is
scored on the same predictions. Training examples carry `dupe_factor` static mask copies,
or none (dynamic masking: the batches draw them).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data.cache import FORMAT_VERSION, cache_key, readable_cache, token_dtype, write_json
from core.data.config import DataConfig
from core.data.corpus import CorpusError
from core.data.examples import Example, TokenStore, build_examples
from core.data.masking import mask_sequence
from core.data.source import CorpusSource
from core.data.tokenizer import Tokenizer
from core.files import atomic_dir

EVAL_SETS = ("mlm", "nsp", "sop")
_SPLIT_SEED = {"train": 0, "mlm": 1, "nsp": 2, "sop": 3}


@dataclass
class ExampleSet:
    """Examples as flat arrays; `masks[k]` is static copy k, or masks is empty (dynamic)."""
    ids: np.ndarray
    offsets: np.ndarray
    type_start: np.ndarray
    labels: np.ndarray
    masks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def example(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def masked(self, i: int, copy: int) -> tuple[np.ndarray, np.ndarray]:
        masked_ids, positions, pos_off = self.masks[copy]
        return (masked_ids[self.offsets[i]:self.offsets[i + 1]],
                positions[pos_off[i]:pos_off[i + 1]].astype(np.int64))


@dataclass
class CachedExamples:
    """One examples/<key>/ entry, read back: the key is the data's fingerprint (corpus,
    tokenizer and data config: what the examples came from)."""
    key: str
    meta: dict
    train: ExampleSet
    evals: dict[str, ExampleSet]


def load_or_build_examples(src: CorpusSource, store: TokenStore, tok: Tokenizer, cfg: DataConfig,
                           cache: Path) -> CachedExamples:
    # held-out sets masked at another rate than training (eval_mask_prob) are built
    # differently from what such a config built before: a key of their own
    evaluation = () if cfg.eval_mask_prob == cfg.mask_prob else ("eval masked at", cfg.eval_mask_prob)
    final = cache / "examples" / cache_key(FORMAT_VERSION, src.fingerprint, tok.fingerprint, cfg.to_dict(),
                                           *evaluation)
    copies = cfg.dupe_factor if cfg.masking == "static" else 0
    dtype = token_dtype(tok.vocab_size).name

    def read(d: Path) -> CachedExamples:
        meta = json.loads((d / "meta.json").read_text())
        return CachedExamples(d.name, meta, _read_examples(d, "train", dtype, copies),
                              {name: _read_examples(d, name, dtype, 1) for name in EVAL_SETS})

    got = readable_cache(final, read)
    if got is None:
        _build_examples(src, store, tok, cfg, final, copies, dtype)
        got = read(final)
    return got


def split_documents(n_docs: int, cfg: DataConfig) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng([cfg.seed, 99])
    held = rng.random(n_docs) < cfg.eval_fraction
    # at least two held-out documents (NSP negatives need another document), never all
    while held.sum() < min(2, n_docs - 2):
        held[int(rng.integers(n_docs))] = True
    return [int(i) for i in np.flatnonzero(~held)], [int(i) for i in np.flatnonzero(held)]


def _build_examples(src: CorpusSource, store: TokenStore, tok: Tokenizer, cfg: DataConfig, final: Path,
                    copies: int, dtype: str) -> None:
    train_docs, eval_docs = split_documents(store.n_docs, cfg)
    if len(eval_docs) < 2 or len(train_docs) < 2:
        raise CorpusError(f"corpus {src.name} has {store.n_docs} document(s); at least 4 are needed "
                          "(two held out for evaluation, and NSP negatives need another document). "
                          "Use a larger corpus, with a blank line between documents in plain text")
    with atomic_dir(final) as tmp:
        n_train = _write_examples(tmp, "train", build_examples(store, train_docs, cfg, cfg.seed),
                                  cfg, tok, copies, None)
        if n_train == 0:
            raise CorpusError(f"corpus {src.name} is too small to build a single training example "
                              f"with max_length={cfg.max_length}; use a larger corpus")
        counts = {"train": n_train}
        for name in EVAL_SETS:
            packing, task = (None, None) if name == "mlm" else ("segment-pair", name)
            examples = build_examples(store, eval_docs, cfg, cfg.seed + 1, packing, task)
            counts[name] = _write_examples(tmp, name, examples, cfg.for_evaluation(), tok, 1, cfg.max_eval_examples)
        write_json(tmp / "meta.json", {"counts": counts, "copies": copies, "dtype": dtype,
                                       "train_docs": len(train_docs), "eval_docs": len(eval_docs)})


def _write_examples(d: Path, name: str, examples: Iterable[Example], cfg: DataConfig, tok: Tokenizer,
                    copies: int, limit: int | None) -> int:
    dtype = token_dtype(tok.vocab_size)
    offsets, type_start, labels = [0], [], []
    mask_files = [(open(d / f"{name}.masked{k}.bin", "wb"), open(d / f"{name}.pos{k}.bin", "wb"), [0])
                  for k in range(copies)]
    rngs = [np.random.default_rng([cfg.seed, _SPLIT_SEED[name], k]) for k in range(copies)]
    with open(d / f"{name}.ids.bin", "wb") as fh:
        for ex in examples:
            if limit is not None and len(labels) >= limit:
                break
            ex.ids.astype(dtype).tofile(fh)
            offsets.append(offsets[-1] + len(ex.ids))
            type_start.append(ex.type_start)
            labels.append(ex.label)
            for (mf, pf, pos_off), rng in zip(mask_files, rngs):
                masked, pos = mask_sequence(ex.ids, cfg, tok.word_start, tok.vocab_size, rng)
                masked.astype(dtype).tofile(mf)
                pos.astype(np.int32).tofile(pf)
                pos_off.append(pos_off[-1] + len(pos))
    for k, (mf, pf, pos_off) in enumerate(mask_files):
        mf.close(), pf.close()
        np.save(d / f"{name}.posoff{k}.npy", np.asarray(pos_off, dtype=np.int64))
    np.save(d / f"{name}.offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(d / f"{name}.type_start.npy", np.asarray(type_start, dtype=np.int32))
    np.save(d / f"{name}.labels.npy", np.asarray(labels, dtype=np.int64))
    return len(labels)


def _read_examples(d: Path, name: str, dtype: str, copies: int) -> ExampleSet:
    def mm(path: Path, dt: str) -> np.ndarray:
        return np.memmap(path, dtype=dt, mode="r") if path.stat().st_size else np.zeros(0, dtype=dt)

    masks = [(mm(d / f"{name}.masked{k}.bin", dtype), mm(d / f"{name}.pos{k}.bin", "int32"),
              np.load(d / f"{name}.posoff{k}.npy")) for k in range(copies)]
    es = ExampleSet(mm(d / f"{name}.ids.bin", dtype), np.load(d / f"{name}.offsets.npy"),
                    np.load(d / f"{name}.type_start.npy"), np.load(d / f"{name}.labels.npy"), masks)
    # memmaps without a shape do not notice a truncated file: check the lengths the offsets promise
    if len(es.ids) != es.offsets[-1] or any(len(m) != es.offsets[-1] or len(p) != po[-1] for m, p, po in masks):
        raise ValueError(f"{d / name}.* are shorter than their offsets (truncated)")
    return es
