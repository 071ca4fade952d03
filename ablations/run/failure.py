"""A failed step of an arm: one line in its row (`core.errors.one_line`), the whole
traceback in the unit's `error.log` (`ablations.rundir.ERROR_LOG`), which `--debug` prints."""
from __future__ import annotations

import traceback
from pathlib import Path

from core.errors import one_line
from core.files import atomic_write_text

__all__ = ["one_line", "write_error_log"]


def write_error_log(path: Path, step: str, err: BaseException) -> None:
    """The whole traceback of a failed step, for `--debug` and for whoever reads the run later."""
    text = "".join(traceback.format_exception(err))
    atomic_write_text(path, f"step: {step}\n{text}")
