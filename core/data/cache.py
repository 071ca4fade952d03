"""The on-disk, content-keyed caches of the data pipeline: where they live, how an entry is
named, written and read back.

Three cached layers, each in its own directory named by a hash of everything it depends
on, each written to a temporary directory and renamed into place (atomic: an
interrupted build leaves nothing half-written, and a second run starts at once):

1. tokenizer/<key>/tokenizer.model      corpus fingerprint + tokenizer settings
2. tokens/<key>/                        the tokenised corpus: flat ids, sentence and
                                        document offsets (memory-mapped, never loaded whole)
3. examples/<key>/                      train and held-out examples for one DataConfig,
                                        with static mask copies or none (dynamic)

Layers 1 and 2 are built in `core.data.token_cache`, layer 3 in `core.data.example_cache`.
A key, what goes into it and `FORMAT_VERSION` are the on-disk layout: change one and
every existing cache entry is orphaned (rebuilt, never misread).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

FORMAT_VERSION = 1

T = TypeVar("T")


def default_cache_dir() -> Path:
    return Path(os.environ.get("BERT_ABLATE_CACHE", Path.home() / ".cache" / "bert-ablate"))


def cache_key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def token_dtype(vocab_size: int) -> np.dtype:
    """The on-disk dtype of token ids: two bytes while the vocabulary fits."""
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max else np.dtype(np.int32)


def readable_cache(final: Path, read: Callable[[Path], T], marker: str = "meta.json") -> T | None:
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
