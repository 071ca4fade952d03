"""The corpus a dataset is built from, and how it is read: its documents, the sentence
splitter and text column that shape them, and the fingerprint that names them in the caches
(`core.data.cache`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.data.builtin_corpus import NAME as BUILTIN_NAME
from core.data.builtin_corpus import builtin_fingerprint, iter_builtin_documents
from core.data.cache import cache_key
from core.data.config import DataConfig
from core.data.corpus import CorpusReport, fingerprint, iter_documents, resolve_files
from core.data.formats import ReadOptions, check_reader_packages
from core.data.sentences import get_splitter
from core.data.tokenizer import character_counts, vocab_for


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
    suffix = "-" + cache_key(reading)[:8] if reading else ""
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
