"""Another error's text inside a one-line message: its first line, cut to a length.

A failure or a warning that names what went wrong beneath it (a torch, SentencePiece or
pyarrow error) must stay one line: the CLI prints one line per failure and a result row
holds one. Those libraries' messages span many lines, and the first says what happened.
"""
from __future__ import annotations


def first_line(err_or_text: BaseException | str, limit: int) -> str:
    """The first line of `err_or_text` (its surrounding whitespace stripped), at most
    `limit` characters. An exception without a message gives its type's name, so that a
    message about an error never fails itself (an IndexError of an empty message)."""
    text = str(err_or_text).strip()
    if text:
        return text.splitlines()[0][:limit]
    return type(err_or_text).__name__[:limit] if isinstance(err_or_text, BaseException) else ""
