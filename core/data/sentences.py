"""A sentence splitter for Korean and English prose.

Paragraph lines (Wikipedia, docstrings) hold several sentences, and NSP/SOP pairs are
built from sentences, so we split at sentence-final punctuation followed by space.
Korean declaratives end in "다." / "요." and are caught by the same rule; English
abbreviations and initials ("e.g.", "Mr.", "J. R. R.") are not split on.
"""
from __future__ import annotations

import re

_END = re.compile(r"[.!?…。！？]+[\"'”’)\]」』]*(?=\s+)")
_ABBREVIATIONS = {
    "e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "no.", "fig.",
    "cf.", "al.", "approx.", "jr.", "sr.", "u.s.", "u.k.", "inc.", "ltd.", "co.", "jan.", "feb.",
    "mar.", "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.",
}


def _is_abbreviation(text: str, end: int) -> bool:
    start = text.rfind(" ", 0, end) + 1
    word = text[start:end].lower()
    if word in _ABBREVIATIONS:
        return True
    return len(word) == 2 and word[0].isalpha() and word[0].isascii() and word[1] == "."  # an initial


def split_sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for m in _END.finditer(text):
        if m.group().startswith(".") and _is_abbreviation(text, m.start() + 1):
            continue
        piece = text[start:m.end()].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# -- choosing a splitter ----------------------------------------------------------------------------
SPLITTERS = ("regex", "kss")
KSS_BACKEND = "punct"  # kss's own punctuation rules: no morphological analyser to install or load


def get_splitter(name: str):
    """The sentence splitter `DataConfig.sentence_splitter` names: `regex` (the rule above)
    or `kss` (Korean Sentence Splitter, the optional extra `kss`)."""
    if name == "regex":
        return split_sentences
    if name == "kss":
        return _kss_splitter()
    from core.registry import unknown_name_error

    raise unknown_name_error("sentence splitter", name, SPLITTERS)


def _kss_splitter():
    from core.extras import require

    kss = require("kss", "--sentence-splitter kss")

    def split(text: str) -> list[str]:
        return [s.strip() for s in kss.split_sentences(text, backend=KSS_BACKEND) if s.strip()]
    return split
