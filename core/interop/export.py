"""Export an arm (model + its SentencePiece tokenizer) to a directory, and load any such
directory back: `export_arm` picks the HF format where transformers is installed and can
hold the model, and says why not otherwise; `load_arm` reads either format, and an HF
directory that `save_pretrained` wrote after fine-tuning (its encoder exactly; the
pretraining heads it lacks are initialised fresh and named in `LoadedArm.note`).

transformers (the `hf` extra) is needed only for the HF format: without it `--format auto`
writes the native format and says so, and `--format hf` or loading an HF directory fails
in one line naming the extra, before anything is written.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.data import Tokenizer
from core.extras import check, installed, require
from core.files import atomic_write_text
from core.interop.convert import from_hf
from core.interop.hf import export_problems, head_of, to_hf
from core.interop.hf_tokenizer import build_hf_tokenizer, save_hf_tokenizer
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
from core.interop.staging import STAGING, remove_leftovers, staging_dir, swap_in
from core.model import PretrainingModel
from core.registry import unknown_name_error

FORMATS = ("auto", "hf", "native")
HF_MODULES = ("transformers", "tokenizers")   # what the HF format needs (the `hf` extra)


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
    note: str = ""     # one line when not everything was loaded (heads a fine-tuned HF checkpoint lacks)


def _missing_hf_module() -> str | None:
    return next((m for m in HF_MODULES if not installed(m)), None)


def choose_format(model: PretrainingModel, fmt: str = "auto") -> tuple[str, str]:
    """(format, why). `hf` without transformers fails here, before anything is written."""
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
    missing = _missing_hf_module()
    if missing and fmt == "hf":
        check(missing, "exporting in the HF format (--format hf)")
    if missing:
        return "native", f"{missing} is not installed (pip install -e '.[hf]' for the HF format)"
    return "hf", "full attention, post-LN, whole-layer sharing at most: HF transformers holds it exactly"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No per-shard progress bars or load reports from transformers inside our own
    commands: what matters of them (heads a checkpoint lacks) is said in one line."""
    logging = require("transformers", "the HF format").utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _save_hf(model: PretrainingModel, sp_model: Path, out: Path, extra: dict[str, Any]) -> None:
    cfg = model.cfg
    hf = to_hf(model)
    with _quiet_transformers():
        hf.save_pretrained(out, safe_serialization=True)
    tok = build_hf_tokenizer(sp_model, type_ids=cfg.type_vocab_size > 1, model_max_length=cfg.max_position_embeddings)
    save_hf_tokenizer(tok, out)
    copy_tokenizer(sp_model, out)
    write_marker(out, "hf", cfg, {"hf_class": type(hf).__name__, **extra})


def export_arm(model: PretrainingModel, sp_model: str | Path, out_dir: str | Path, fmt: str = "auto",
               extra: dict[str, Any] | None = None) -> ExportResult:
    """Write `model` and its tokenizer to `out_dir`. An earlier export there is replaced
    whole, and only once the new one is complete; a directory holding anything this
    project's export did not write is refused, never emptied. The export is built in a
    unique marked directory beside `out_dir` (`core.interop.staging`): no other directory
    is touched, whatever its name."""
    chosen, reason = choose_format(model, fmt)
    out = Path(out_dir)
    _check_replaceable(out, Path(sp_model))
    remove_leftovers(out)
    with staging_dir(out) as tmp:
        if chosen == "hf":
            _save_hf(model, Path(sp_model), tmp, dict(extra or {}))
        else:
            save_native(model, sp_model, tmp, extra)
        _record_files(tmp)
        swap_in(tmp, out)
    return ExportResult(out, chosen, reason)


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
                     and str(p.relative_to(out)) not in written | {MARKER, STAGING})
    if not (out / MARKER).is_file() or foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(f"--out {out} holds files that no export of this project wrote ({shown}); choose "
                              "another --out, or move them away first: an export replaces only an earlier export")


def _record_files(directory: Path) -> None:
    """The marker lists every file the export wrote, so that a later export may replace them and nothing else."""
    marker = read_marker(directory)
    marker["files"] = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                             if p.is_file() and p.name != STAGING)
    atomic_write_text(directory / MARKER, json.dumps(marker, indent=1, sort_keys=True))


# the HF class each family's directory is read into: with the sentence head, or without
_PRETRAINING_CLASS = {"bert": ("BertForPreTraining", "BertForMaskedLM"),
                      "albert": ("AlbertForPreTraining", "AlbertForMaskedLM"),
                      "roberta": ("RobertaForMaskedLM", "RobertaForMaskedLM")}


def _hf_family(directory: Path) -> tuple[str, str]:
    """(family, the saved architecture) from config.json; a family we cannot read fails in one line."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{directory / 'config.json'} is not valid JSON ({err})") from None
    family, arch = config.get("model_type"), (config.get("architectures") or ["?"])[0]
    if family not in _PRETRAINING_CLASS:
        raise ValueError(f"{directory / 'config.json'}: model_type {family!r} ({arch}) is not bert, albert or "
                         "roberta, the HF families load_arm reads")
    return family, arch


def _saved_weight_names(directory: Path) -> set[str]:
    """The tensor names a save_pretrained directory holds (read from headers only)."""
    index = directory / f"{WEIGHTS}.index.json"
    if index.is_file():
        return set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}))
    if not (directory / WEIGHTS).is_file():
        return set()
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(directory / WEIGHTS), "pt") as f:
            return set(f.keys())
    except SafetensorError as err:
        raise unreadable_weights(directory / WEIGHTS, err) from None


def _has_sentence_head(family: str, names: set[str], arch: str) -> bool:
    """BERT and ALBERT keep a pooler (our sentence head's first half) wherever the
    checkpoint has one; RoBERTa's layout has no sentence head."""
    if family == "roberta":
        return False
    return any(".pooler." in f".{n}" for n in names) if names else arch.endswith("ForPreTraining")


def _load_hf_dir(directory: Path) -> tuple[PretrainingModel, str]:
    """The model in an HF directory, and a line naming the heads it lacked ("" if none).

    The directory is read into the family's pretraining class whatever class saved it
    (BertModel, BertForSequenceClassification after fine-tuning, ...): the encoder loads
    exactly; heads the checkpoint lacks are initialised fresh, and named; a checkpoint
    without an encoder's weights is refused."""
    tf = require("transformers", f"loading {directory} (an HF-format arm)")
    family, arch = _hf_family(directory)
    sentence = _has_sentence_head(family, _saved_weight_names(directory), arch)
    cls = getattr(tf, _PRETRAINING_CLASS[family][0 if sentence else 1])
    from safetensors import SafetensorError

    with _quiet_transformers():
        try:
            # num_labels: a classifier's config says 3 (say); ALBERT's SOP head is sized by it, ours has 2
            hf, info = cls.from_pretrained(directory, output_loading_info=True, num_labels=2)
        except SafetensorError as err:
            raise unreadable_weights(directory / WEIGHTS, err) from None
    return from_hf(hf).eval(), _loading_note(directory, family, arch, info)


def _loading_note(directory: Path, family: str, arch: str, info: dict[str, Any]) -> str:
    missing = sorted(info.get("missing_keys") or [])
    encoder = [k for k in missing if head_of(family, k) is None]
    if encoder:
        raise ValueError(f"{directory}: {arch} lacks encoder weights ({encoder[0]}, {len(encoder)} in all); not a "
                         f"{family} checkpoint load_arm can read")
    heads = sorted({head_of(family, k) for k in missing})
    if not heads:
        return ""
    dropped = sorted({k.split(".")[0] for k in info.get("unexpected_keys") or []})
    return (f"{directory} ({arch}) has no {', '.join(heads)}: its encoder is loaded exactly, the missing heads "
            "are initialised fresh" + (f"; not carried: {', '.join(dropped)}" if dropped else ""))


def hf_dir(directory: Path) -> bool:
    """An HF-format directory (read by transformers), as opposed to the native format."""
    marker = read_marker(directory) if (directory / MARKER).is_file() else None
    return (marker is None or marker.get("format") != "native") and (directory / "config.json").is_file()


def check_loadable(directory: str | Path, feature: str) -> None:
    """Fail now, in one line naming the extra, if `directory` is HF-format and transformers is missing."""
    if hf_dir(Path(directory)):
        check("transformers", feature)


def load_arm(directory: str | Path) -> LoadedArm:
    """Load an exported arm (HF or native format), a finished run's arm directory, or a
    directory that transformers' save_pretrained wrote from one (heads it lacks: `.note`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory; give an exported arm (python -m ablations "
                                "export) or a run's arm directory (RUN_DIR/arms/ARM)")
    marker = read_marker(directory) if (directory / MARKER).is_file() else None
    if not hf_dir(directory) and (marker or {}).get("format") != "native":
        raise FileNotFoundError(f"{directory} holds no exported arm: expected {MARKER} (native) or config.json "
                                "(HF). An unfinished or errored arm keeps only its checkpoint")
    sp = directory / SP_MODEL
    if not sp.is_file():
        raise FileNotFoundError(f"{sp} is missing: the arm's SentencePiece tokenizer travels with it; re-export, "
                                f"or copy it from the exported arm (save_pretrained does not write it)")
    note = ""
    if hf_dir(directory):
        model, note = _load_hf_dir(directory)
        if note:
            warnings.warn(note, stacklevel=2)
    else:
        model = load_native(directory, marker)
    return LoadedArm(model, Tokenizer(sp), "hf" if hf_dir(directory) else "native", marker or {}, note)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())
