"""Where an export is written before it replaces --out, and the only directories an export
ever removes besides the earlier export it replaces.

An export is built in a directory of its own, made by `tempfile.mkdtemp` beside --out (so
that the final rename stays on one file system) under a unique name, `.NAME.export-XXXXXXXX`,
and marked with a `STAGING` file naming its writer (host and pid). The earlier export moves
aside the same way (`.NAME.replaced-XXXXXXXX`) until the new one is in place. A fixed name
such as `.NAME.export` would be a user's directory as often as ours; a unique one never is.
A leftover of a killed export is removed only when it carries the marker and its writer is
gone, so nothing a user made, whatever its name, is ever deleted.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

STAGING = ".bert_ablate_staging"


def _mark(directory: Path) -> None:
    (directory / STAGING).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}),
                                     encoding="utf-8")


def _new(out: Path, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{kind}-", dir=out.parent))


def _abandoned(directory: Path) -> bool:
    """Marked as an export's, by a process of this host that is no longer running."""
    try:
        writer = json.loads((directory / STAGING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # not ours, or not readable: left alone
    if not isinstance(writer, dict) or writer.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return False


def remove_leftovers(out: Path) -> list[Path]:
    """Staging directories of exports to `out` that were killed; nothing else."""
    pattern = f".{glob.escape(out.name)}.*-*"
    gone = [d for d in out.parent.glob(pattern) if d.is_dir() and not d.is_symlink() and _abandoned(d)]
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


@contextlib.contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A fresh marked directory beside `out` to fill; removed if the block fails. The block
    ends by `swap_in`, after which it no longer exists."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = _new(out, "export")
    _mark(staged)
    try:
        yield staged
    finally:
        if staged.is_dir():
            shutil.rmtree(staged, ignore_errors=True)


def swap_in(staged: Path, out: Path) -> None:
    """Put the finished export in place; the earlier one (or an empty --out) moves to a
    unique marked directory first and is removed only once the new one is there."""
    old = None
    if out.exists():
        old = _new(out, "replaced")
        os.replace(out, old)   # onto the empty directory mkdtemp made
        _mark(old)
    try:
        os.replace(staged, out)
    except OSError:
        if old is not None:  # the earlier export goes back where it was
            os.replace(old, out)
            (out / STAGING).unlink(missing_ok=True)
        raise
    (out / STAGING).unlink(missing_ok=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
