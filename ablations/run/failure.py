"""A failed step of an arm, told in one line; its traceback kept in a file.

A row's `error` and the run's final summary are read by people scanning a table and by
scripts: one line each, the exception's type and message and the file:line that raised
it, never source lines or caret art. The whole traceback goes to the unit's
`error.log` (`ablations.rundir.ERROR_LOG`), which `--debug` prints.
"""
from __future__ import annotations

import traceback
from pathlib import Path

from core.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]  # the project root: paths inside it are shown relative to it
MAX_CHARS = 400


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


def write_error_log(path: Path, step: str, err: BaseException) -> None:
    """The whole traceback of a failed step, for `--debug` and for whoever reads the run later."""
    text = "".join(traceback.format_exception(err))
    atomic_write_text(path, f"step: {step}\n{text}")
