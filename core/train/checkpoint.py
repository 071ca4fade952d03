"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint holds model, optimizer, progress (which drives the schedule), RNG states and
the data position, so a resumed run reproduces an uninterrupted one exactly on CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.files import atomic_path

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict:
    """Never unpickles arbitrary objects; a damaged file is named, not a deep traceback."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, bad magic, unsafe pickle...
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated and cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Delete it to start the run "
            "over, or restore it from a backup"
        ) from None
