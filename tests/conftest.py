"""Shared fixtures: a small real-prose corpus (from the built-in stdlib-docstring corpus)
and a data cache private to the test session, so tests never touch the user's cache."""
from pathlib import Path

import pytest

from tests import SHARED_DATA


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    from core.data.builtin_corpus import iter_builtin_documents

    path = tmp_path_factory.mktemp("corpus") / "prose.txt"
    docs = []
    for doc in iter_builtin_documents():
        docs.append("\n".join(doc))
        if len(docs) == 60:
            break
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def kowiki() -> Path:
    path = SHARED_DATA / "kowiki"
    if not path.is_dir():
        pytest.skip(f"optional Korean Wikipedia sample not found at {path}")
    return path


@pytest.fixture(scope="session")
def small_data(corpus_file, cache_dir):
    """The small dataset test_data.py builds (same settings, so the cache is shared)."""
    from core.data import DataConfig, build_dataset

    return build_dataset(DataConfig(vocab_size=600, max_length=64, dupe_factor=3, max_eval_examples=200),
                         corpus_file, cache_dir)
