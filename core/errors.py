"""Errors as one line: the one place that turns an exception into text a person reads.

A failure must stay one line: the CLI prints one line per failure and a result row holds
one. `one_line` is an exception's type, message (its lines joined) and the file:line that
raised it, never source lines or caret art (the traceback goes to a log: `--debug`).
`first_line` is another error's text inside a message of our own (a torch, SentencePiece
or pyarrow error beneath what went wrong): its first line, cut to a length.
"""
from __future__ import annotations

import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project root: paths inside it are shown relative to it
MAX_CHARS = 400


def first_line(err_or_text: BaseException | str, limit: int) -> str:
    """The first line of `err_or_text` (its surrounding whitespace stripped), at most
    `limit` characters. An exception without a message gives its type's name, so that a
    message about an error never fails itself (an IndexError of an empty message)."""
    text = str(err_or_text).strip()
    if text:
        return text.splitlines()[0][:limit]
    return type(err_or_text).__name__[:limit] if isinstance(err_or_text, BaseException) else ""


def raised_at(err: BaseException) -> str:
    """'core/interop/native.py:27': where the exception was raised (its innermost frame)."""
    tb = err.__traceback__
    if tb is None:
        return ""
    frame = traceback.extract_tb(tb)[-1]
    path = Path(frame.filename)
    try:
        shown = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return f"{shown}:{frame.lineno}"


def one_line(err: BaseException) -> str:
    """'ModuleNotFoundError: No module named 'safetensors' (core/interop/native.py:27)'."""
    message = " ".join(str(err).split()) or "(no message)"
    if len(message) > MAX_CHARS:
        message = message[:MAX_CHARS - 1] + "…"
    where = raised_at(err)
    return f"{type(err).__name__}: {message}" + (f" ({where})" if where else "")
