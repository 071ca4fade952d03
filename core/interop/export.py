"""Export an arm (model + its SentencePiece tokenizer) to a directory, and load any such
directory back: `export_arm` picks the HF format where transformers can hold the model and
says why not otherwise; `load_arm` reads either format.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.data import Tokenizer
from core.files import atomic_dir, atomic_write_text
from core.interop.hf import export_problems, from_hf, to_hf
from core.interop.hf_tokenizer import build_hf_tokenizer
from core.interop.native import (
    MARKER,
    SP_MODEL,
    WEIGHTS,
    copy_tokenizer,
    load_native,
    read_marker,
    save_native,
    unreadable_weights,
    write_marker,
)
from core.model import PretrainingModel
from core.registry import unknown_name_error

FORMATS = ("auto", "hf", "native")


@dataclass
class ExportResult:
    path: Path
    format: str        # hf | native
    reason: str        # why this format, in one sentence


@dataclass
class LoadedArm:
    model: PretrainingModel
    tokenizer: Tokenizer
    format: str
    info: dict[str, Any] = field(default_factory=dict)   # the marker: config and provenance


def choose_format(model: PretrainingModel, fmt: str = "auto") -> tuple[str, str]:
    if fmt not in FORMATS:
        raise unknown_name_error("export format", fmt, FORMATS)
    problems = export_problems(model.cfg)
    if fmt == "hf" and problems:
        raise ValueError("this arm cannot be exported in HF format: " + "; ".join(problems)
                         + ". Use --format native (or auto)")
    if fmt == "native":
        return "native", "native format requested"
    if problems:
        return "native", "HF transformers cannot represent " + "; ".join(problems)
    return "hf", "full attention, post-LN, whole-layer sharing at most: HF transformers holds it exactly"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No per-shard progress bars from transformers inside our own commands."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


def _save_hf(model: PretrainingModel, sp_model: Path, out: Path, extra: dict[str, Any]) -> None:
    cfg = model.cfg
    hf = to_hf(model)
    with _quiet_transformers():
        hf.save_pretrained(out, safe_serialization=True)
    tok = build_hf_tokenizer(sp_model, type_ids=cfg.type_vocab_size > 1, model_max_length=cfg.max_position_embeddings)
    tok.save_pretrained(out)
    copy_tokenizer(sp_model, out)
    write_marker(out, "hf", cfg, {"hf_class": type(hf).__name__, **extra})


def export_arm(model: PretrainingModel, sp_model: str | Path, out_dir: str | Path, fmt: str = "auto",
               extra: dict[str, Any] | None = None) -> ExportResult:
    """Write `model` and its tokenizer to `out_dir`. An earlier export there is replaced
    whole, and only once the new one is complete; a directory holding anything this
    project's export did not write is refused, never emptied."""
    chosen, reason = choose_format(model, fmt)
    out = Path(out_dir)
    _check_replaceable(out, Path(sp_model))
    shutil.rmtree(_staging(out), ignore_errors=True)  # left by an export that was killed
    with atomic_dir(_staging(out)) as tmp:
        if chosen == "hf":
            _save_hf(model, Path(sp_model), tmp, dict(extra or {}))
        else:
            save_native(model, sp_model, tmp, extra)
        _record_files(tmp)
    _swap_in(_staging(out), out)
    return ExportResult(out, chosen, reason)


def _staging(out: Path) -> Path:
    return out.with_name(f".{out.name}.export")


def _check_replaceable(out: Path, sp_model: Path) -> None:
    """An --out may be new, empty, or an earlier export holding only the files it wrote."""
    if sp_model.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--out {out} is the directory the arm is read from; export to another directory")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a directory")
    written = set((read_marker(out) if (out / MARKER).is_file() else {}).get("files") or [])
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
                     and str(p.relative_to(out)) not in written | {MARKER})
    if not (out / MARKER).is_file() or foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(f"--out {out} holds files that no export of this project wrote ({shown}); choose "
                              "another --out, or move them away first: an export replaces only an earlier export")


def _record_files(directory: Path) -> None:
    """The marker lists every file the export wrote, so that a later export may replace them and nothing else."""
    marker = read_marker(directory)
    marker["files"] = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    atomic_write_text(directory / MARKER, json.dumps(marker, indent=1, sort_keys=True))


def _swap_in(staged: Path, out: Path) -> None:
    """Put the finished export in place; the earlier one is removed only after that."""
    if not out.exists():
        os.replace(staged, out)
        return
    old = out.with_name(f".{out.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(staged, out)
    shutil.rmtree(old, ignore_errors=True)


def _load_hf_dir(directory: Path, marker: dict[str, Any] | None) -> PretrainingModel:
    import json

    import transformers as tf

    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    arch = (config.get("architectures") or [""])[0]
    if not hasattr(tf, arch):
        raise ValueError(f"{directory / 'config.json'}: architecture {arch!r} is not one of "
                         "Bert/Albert/Roberta ForPreTraining/ForMaskedLM, which load_arm reads")
    from safetensors import SafetensorError

    with _quiet_transformers():
        try:
            hf = getattr(tf, arch).from_pretrained(directory)
        except SafetensorError as err:
            raise unreadable_weights(directory / WEIGHTS, err) from None
    return from_hf(hf).eval()


def load_arm(directory: str | Path) -> LoadedArm:
    """Load an exported arm (HF or native format) or a finished run's arm directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory; give an exported arm (python -m ablations "
                                "export) or a run's arm directory (RUN_DIR/arms/ARM)")
    marker = read_marker(directory) if (directory / MARKER).is_file() else None
    if marker is not None and marker.get("format") == "native":
        model = load_native(directory, marker)
    elif (directory / "config.json").is_file():
        model = _load_hf_dir(directory, marker)
    else:
        raise FileNotFoundError(f"{directory} holds no exported arm: expected {MARKER} (native) or config.json "
                                "(HF). An unfinished or errored arm keeps only its checkpoint")
    sp = directory / SP_MODEL
    if not sp.is_file():
        raise FileNotFoundError(f"{sp} is missing: the arm's SentencePiece tokenizer travels with it; re-export")
    return LoadedArm(model, Tokenizer(sp), (marker or {}).get("format", "hf"), marker or {})


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())
