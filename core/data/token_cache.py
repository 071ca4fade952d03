"""Cache layers 1 and 2 (`core.data.cache`): the corpus's tokenizer and its token ids.

The tokenizer is trained once per corpus and tokenizer settings (or loaded from
`tokenizer_path`); the tokenised corpus is written once per corpus and tokenizer as flat
ids with sentence and document offsets, memory-mapped when read, never loaded whole.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.data.cache import FORMAT_VERSION, cache_key, readable_cache, token_dtype, write_json
from core.data.config import DataConfig
from core.data.corpus import CorpusReport, empty_corpus_error
from core.data.examples import TokenStore
from core.data.source import CorpusSource
from core.data.tokenizer import Tokenizer, TokenizerError, load_tokenizer, train_tokenizer
from core.files import atomic_dir


# -- layer 1: tokenizer -------------------------------------------------------------------
def load_or_train_tokenizer(src: CorpusSource, cfg: DataConfig, cache: Path) -> Tokenizer:
    if cfg.tokenizer_path:
        tok = load_tokenizer(cfg.tokenizer_path)
    else:
        key = cache_key(src.fingerprint, cfg.vocab_size, cfg.tokenizer_type, cfg.character_coverage,
                        cfg.tokenizer_max_sentences)
        path = cache / "tokenizer" / key / "tokenizer.model"
        tok = readable_cache(path.parent, lambda d: load_tokenizer(d / "tokenizer.model"), marker="tokenizer.model")
        if tok is None:
            report = CorpusReport()
            tok = train_tokenizer(lambda: (s for doc in src.documents(report) for s in doc), path, cfg, src.name,
                                  report)
    if tok.vocab_size != cfg.vocab_size:
        raise TokenizerError(f"tokenizer {tok.path} has {tok.vocab_size} pieces but vocab_size={cfg.vocab_size}; "
                             f"set --vocab-size {tok.vocab_size} to match it")
    return tok


# -- layer 2: tokenised corpus ---------------------------------------------------------------
def load_or_build_store(src: CorpusSource, tok: Tokenizer, cache: Path) -> tuple[TokenStore, dict]:
    """The tokenised corpus and its CorpusReport (as a dict), built on first use."""
    final = cache / "tokens" / cache_key(FORMAT_VERSION, src.fingerprint, tok.fingerprint)
    got = readable_cache(final, _read_store)
    if got is None:
        _build_store(src, tok, final)
        got = _read_store(final)
    return got


def _token_store(d: Path) -> TokenStore:
    meta = json.loads((d / "meta.json").read_text())
    return TokenStore(
        tokens=np.memmap(d / "tokens.bin", dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
        if meta["n_tokens"] else np.zeros(0, dtype=meta["dtype"]),
        sent_offsets=np.load(d / "sent_offsets.npy"),
        doc_offsets=np.load(d / "doc_offsets.npy"),
    )


def _read_store(final: Path) -> tuple[TokenStore, dict]:
    meta = json.loads((final / "meta.json").read_text())
    return _token_store(final), meta["report"]


def _build_store(src: CorpusSource, tok: Tokenizer, final: Path) -> None:
    dtype = token_dtype(tok.vocab_size)
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
        write_json(tmp / "meta.json", {"dtype": dtype.name, "n_tokens": n, "corpus": src.name,
                                       "report": report.__dict__})
