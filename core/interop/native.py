"""The library's own export format, for every arm (HF cannot hold LSH, reversible or
partially shared models) and for the weights a finished run keeps:

    DIR/bert_ablate.json   {"format": "native" | "hf", "model_config": {...}, ...}
    DIR/model.safetensors  our state dict (native) or HF's (hf)
    DIR/sentencepiece.model  the arm's own tokenizer

Each file is written atomically and the JSON marker last, so a half-written export is
never mistaken for a whole one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from core.errors import first_line
from core.files import atomic_path, atomic_write_text
from core.model import ModelConfig, PretrainingModel

MARKER = "bert_ablate.json"
WEIGHTS = "model.safetensors"
SP_MODEL = "sentencepiece.model"


def _save_weights(model: PretrainingModel, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})


def copy_tokenizer(sp_model: str | Path, out_dir: Path) -> None:
    with atomic_path(out_dir / SP_MODEL) as tmp:
        shutil.copyfile(sp_model, tmp)


def write_marker(out_dir: Path, fmt: str, cfg: ModelConfig, extra: dict[str, Any] | None = None) -> None:
    body = {"format": fmt, "model_config": cfg.to_dict(), **(extra or {})}
    atomic_write_text(out_dir / MARKER, json.dumps(body, indent=1, sort_keys=True))


def save_native(model: PretrainingModel, sp_model: str | Path, out_dir: str | Path,
                extra: dict[str, Any] | None = None) -> Path:
    """Write `model` and its tokenizer to `out_dir` in the native format (any arm)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_weights(model, out / WEIGHTS)
    copy_tokenizer(sp_model, out)
    write_marker(out, "native", model.cfg, extra)
    return out


def read_marker(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{directory / MARKER} is not valid JSON ({err}); re-export the arm") from None


def unreadable_weights(weights: Path, err: Exception) -> ValueError:
    """A weights file cut short (a full disk, a killed copy) or damaged: named, with the fix."""
    return ValueError(f"{weights} is truncated or corrupt ({first_line(err, 120)}); re-export the arm "
                      "(python -m ablations export RUN ARM), or copy it again; a run's kept weights come back by "
                      "re-running that arm")


def load_native(directory: Path, marker: dict[str, Any]) -> PretrainingModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg = ModelConfig.from_dict(marker["model_config"])
    model = PretrainingModel(cfg)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: {directory} holds a config but no weights; re-export it")
    try:
        state = load_file(str(weights))
    except SafetensorError as err:
        raise unreadable_weights(weights, err) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights} does not fit its config: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}; re-export the arm")
    return model.eval()
