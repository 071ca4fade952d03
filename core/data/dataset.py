"""Building, caching and serving pretraining data.

Three cached layers, each in its own directory named by a hash of everything it depends
on, each written to a temporary directory and renamed into place (atomic: an
interrupted build leaves nothing half-written, and a second run starts at once):

1. tokenizer/<key>/tokenizer.model      corpus fingerprint + tokenizer settings
2. tokens/<key>/                        the tokenised corpus: flat ids, sentence and
                                        document offsets (memory-mapped, never loaded whole)
3. examples/<key>/                      train and held-out examples for one DataConfig,
                                        with static mask copies or none (dynamic)

Held-out documents are chosen per document before any example is built, so no
sentence of an evaluation example was ever seen in training. Evaluation masks are fixed
(one seeded copy), whatever the training masking mode, so every arm of an ablation is
scored on the same predictions.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.data.builtin_corpus import NAME as BUILTIN_NAME
from core.data.builtin_corpus import builtin_fingerprint, iter_builtin_documents
from core.data.config import FIRST_ORDINARY_ID, MASK, PAD, UNK, DataConfig
from core.data.corpus import CorpusError, CorpusReport, empty_corpus_error, fingerprint, iter_documents, resolve_files
from core.data.examples import IGNORE, TokenStore, build_examples
from core.data.formats import ReadOptions, check_reader_packages
from core.data.masking import mask_sequence
from core.data.sentences import get_splitter
from core.data.tokenizer import Tokenizer, TokenizerError, character_counts, load_tokenizer, train_tokenizer, vocab_for
from core.files import atomic_dir

FORMAT_VERSION = 1
EVAL_SETS = ("mlm", "nsp", "sop")


def default_cache_dir() -> Path:
    return Path(os.environ.get("BERT_ABLATE_CACHE", Path.home() / ".cache" / "bert-ablate"))


def _key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


# -- corpus ------------------------------------------------------------------------------
@dataclass
class CorpusSource:
    name: str
    fingerprint: str
    files: list[Path] | None  # None: the built-in corpus
    sentence_splitter: str = "regex"
    text_column: str = "text"

    def documents(self, report: CorpusReport) -> Iterator[list[str]]:
        split = get_splitter(self.sentence_splitter)
        if self.files is None:
            for doc in iter_builtin_documents(split):
                report.documents += 1
                report.sentences += len(doc)
                yield doc
        else:
            yield from iter_documents(self.files, report, opts=ReadOptions(split, self.text_column))


def corpus_source(corpus: str | os.PathLike | None, text_column: str = "text",
                  sentence_splitter: str = "regex") -> CorpusSource:
    """The corpus and how it is read: the splitter and the text column change its
    sentences, so they join its fingerprint (at their defaults they leave it as it was)."""
    reading = {k: v for k, v in (("sentence_splitter", sentence_splitter), ("text_column", text_column))
               if v != DataConfig.__dataclass_fields__[k].default}
    suffix = "-" + _key(reading)[:8] if reading else ""
    if corpus is None or str(corpus) in ("", "builtin"):
        return CorpusSource(BUILTIN_NAME, "builtin-" + builtin_fingerprint() + suffix, None, sentence_splitter,
                            text_column)
    files = resolve_files(corpus)
    check_reader_packages(files)
    return CorpusSource(str(corpus), fingerprint(files) + suffix, files, sentence_splitter, text_column)


def vocab_for_corpus(src: CorpusSource, at_least: int, max_documents: int = 2000) -> int:
    """The smallest round vocabulary (>= at_least) that holds the corpus's characters,
    counted on its first documents."""
    docs = (doc for _, doc in zip(range(max_documents), src.documents(CorpusReport())))
    return vocab_for(character_counts(s for doc in docs for s in doc), at_least)


# -- layer 1: tokenizer -------------------------------------------------------------------
def load_or_train_tokenizer(src: CorpusSource, cfg: DataConfig, cache: Path) -> Tokenizer:
    if cfg.tokenizer_path:
        tok = load_tokenizer(cfg.tokenizer_path)
    else:
        key = _key(src.fingerprint, cfg.vocab_size, cfg.tokenizer_type, cfg.character_coverage,
                   cfg.tokenizer_max_sentences)
        path = cache / "tokenizer" / key / "tokenizer.model"
        tok = _readable_cache(path.parent, lambda d: load_tokenizer(d / "tokenizer.model"), marker="tokenizer.model")
        if tok is None:
            report = CorpusReport()
            tok = train_tokenizer(lambda: (s for doc in src.documents(report) for s in doc), path, cfg, src.name,
                                  report)
    if tok.vocab_size != cfg.vocab_size:
        raise TokenizerError(f"tokenizer {tok.path} has {tok.vocab_size} pieces but vocab_size={cfg.vocab_size}; "
                             f"set --vocab-size {tok.vocab_size} to match it")
    return tok


# -- layer 2: tokenised corpus ---------------------------------------------------------------
def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max else np.dtype(np.int32)


def _token_store(d: Path) -> TokenStore:
    meta = json.loads((d / "meta.json").read_text())
    return TokenStore(
        tokens=np.memmap(d / "tokens.bin", dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
        if meta["n_tokens"] else np.zeros(0, dtype=meta["dtype"]),
        sent_offsets=np.load(d / "sent_offsets.npy"),
        doc_offsets=np.load(d / "doc_offsets.npy"),
    )


def load_or_build_store(src: CorpusSource, tok: Tokenizer, cache: Path) -> tuple[TokenStore, dict]:
    final = cache / "tokens" / _key(FORMAT_VERSION, src.fingerprint, tok.fingerprint)
    got = _readable_cache(final, _read_store)
    if got is None:
        _build_store(src, tok, final)
        got = _read_store(final)
    return got


def _read_store(final: Path) -> tuple[TokenStore, dict]:
    meta = json.loads((final / "meta.json").read_text())
    return _token_store(final), meta["report"]


def _build_store(src: CorpusSource, tok: Tokenizer, final: Path) -> None:
    dtype = _dtype(tok.vocab_size)
    report = CorpusReport()
    with atomic_dir(final) as tmp:
        sent_off, doc_off, n = [0], [0], 0
        with open(tmp / "tokens.bin", "wb") as fh:
            for doc in src.documents(report):
                for ids in tok.encode(doc):
                    if ids:
                        np.asarray(ids, dtype=dtype).tofile(fh)
                        n += len(ids)
                        sent_off.append(n)
                if len(sent_off) - 1 > doc_off[-1]:
                    doc_off.append(len(sent_off) - 1)
        if len(doc_off) == 1:
            raise empty_corpus_error(src.name, report)
        np.save(tmp / "sent_offsets.npy", np.asarray(sent_off, dtype=np.int64))
        np.save(tmp / "doc_offsets.npy", np.asarray(doc_off, dtype=np.int64))
        _write_json(tmp / "meta.json", {"dtype": dtype.name, "n_tokens": n, "corpus": src.name,
                                        "report": report.__dict__})


def _readable_cache(final: Path, read, marker: str = "meta.json"):
    """Read a cache entry; a damaged one (truncated by a full disk or a killed copy) is
    removed with a one-line warning and rebuilt by the caller, never a cryptic mmap error."""
    if not (final / marker).is_file():
        return None
    try:
        return read(final)
    except (ValueError, OSError, EOFError, KeyError) as err:
        warnings.warn(f"cache entry {final} is damaged ({type(err).__name__}: {str(err)[:120]}); rebuilding it",
                      stacklevel=3)
        shutil.rmtree(final, ignore_errors=True)
        return None


# -- layer 3: examples ------------------------------------------------------------------------
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


_SPLIT_SEED = {"train": 0, "mlm": 1, "nsp": 2, "sop": 3}


def _write_examples(d: Path, name: str, examples, cfg: DataConfig, tok: Tokenizer,
                    copies: int, limit: int | None) -> int:
    dtype = _dtype(tok.vocab_size)
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


def split_documents(n_docs: int, cfg: DataConfig) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng([cfg.seed, 99])
    held = rng.random(n_docs) < cfg.eval_fraction
    # at least two held-out documents (NSP negatives need another document), never all
    while held.sum() < min(2, n_docs - 2):
        held[int(rng.integers(n_docs))] = True
    return [int(i) for i in np.flatnonzero(~held)], [int(i) for i in np.flatnonzero(held)]


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

    def train_batch(self, batch_size: int, index: int) -> dict:
        """Batch `index` of the endless stream that `train_batches` yields (epochs laid end
        to end), without building the batches before it."""
        epoch, b = divmod(index, self._per_epoch(batch_size))
        order = self.epoch_order(epoch)
        return self.collate(self.train, order[b * batch_size:(b + 1) * batch_size], epoch=epoch)

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

    def collate(self, es: ExampleSet, indices: np.ndarray, epoch: int = 0, copy: int | None = None) -> dict:
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
                masked, pos = mask_sequence(ids, self.cfg, self.tokenizer.word_start, self.tokenizer.vocab_size, rng)
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
    final = cache / "examples" / _key(FORMAT_VERSION, src.fingerprint, tok.fingerprint, cfg.to_dict())
    copies = cfg.dupe_factor if cfg.masking == "static" else 0
    dtype = _dtype(tok.vocab_size).name

    def read(d: Path):
        meta = json.loads((d / "meta.json").read_text())
        return (meta, _read_examples(d, "train", dtype, copies),
                {name: _read_examples(d, name, dtype, 1) for name in EVAL_SETS})

    got = _readable_cache(final, read)
    if got is None:
        _build_examples(src, store, tok, cfg, final, copies, dtype)
        got = read(final)
    meta, train, evals = got
    data = PretrainingData(cfg, tok, src.name, report, store, train, evals, meta)
    data.fingerprint = final.name  # corpus, tokenizer and data config: what the examples came from
    return data


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
            counts[name] = _write_examples(tmp, name, examples, cfg, tok, 1, cfg.max_eval_examples)
        _write_json(tmp / "meta.json", {"counts": counts, "copies": copies, "dtype": dtype,
                                        "train_docs": len(train_docs), "eval_docs": len(eval_docs)})
