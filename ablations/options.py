"""Run options (the CLI's flags) and how they resolve against an ablation's defaults."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ablations.specs import AblationSpec
from core.registry import unknown_name_error
from variants import SIZES


@dataclass
class RunOptions:
    corpus: str | None = None
    size: str | None = None
    steps: int = 0
    tokens: int = 0
    time_budget: float = 0.0        # seconds for all trained arms together, split equally
    seq_len: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    quick: bool = False
    vocab_size: int | None = None
    lr: float | None = None
    long_seq_len: int | None = None  # extra saved-bytes figure at a long length; 0 disables
    keep_checkpoints: bool = False
    cache_dir: str | None = None
    progress: bool = True
    memory_limit_bytes: int | None = None
    downstream: tuple[str, ...] = ()   # tasks to fine-tune every ok arm on (ablations.downstream)
    downstream_steps: int = 300
    downstream_seeds: int = 1


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '600' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"cannot read duration {text!r}; use e.g. 90s, 10m or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def effective_options(spec: AblationSpec, opts: RunOptions) -> dict[str, Any]:
    d = dict(spec.defaults)
    quick = opts.quick
    size = opts.size or d.get("size") or ("tiny" if quick else "mini")
    if size not in SIZES:
        raise unknown_name_error("size", size, SIZES)
    seq_len = opts.seq_len or (64 if quick else d.get("seq_len", 128))
    batch = opts.batch_size or (4 if quick else d.get("batch_size", 16))
    budget: dict[str, Any] = {}
    if opts.steps:
        budget["max_steps"] = opts.steps
    if opts.tokens:
        budget["max_tokens"] = opts.tokens
    if opts.time_budget:
        budget["max_seconds"] = opts.time_budget  # divided among trained arms by the runner
    if not budget:
        budget = {"max_steps": 3} if quick else {"max_tokens": d.get("tokens", 60_000)}
    return {"size": size, "seq_len": seq_len, "batch_size": batch, "budget": budget,
            "vocab_size": opts.vocab_size or (500 if quick else d.get("vocab_size", 8000)),
            "lr": opts.lr or d.get("lr", 1e-3),
            "long_seq_len": opts.long_seq_len if opts.long_seq_len is not None else (128 if quick else 2048)}
