"""Warm starts (KoBigBird's recipe): begin an arm from another arm's weights where shapes
allow, e.g. a 512-token `roberta` continued as `roberta-lsh` at 4096 tokens.

A longer position table is filled by repeating the learned positions (KoBigBird copies the
512 learned rows over and over); everything that cannot be carried is listed, never dropped
silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from core.model import PretrainingModel

POSITIONS = "embeddings.position.weight"


@dataclass
class WarmStartReport:
    copied: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)      # position tables filled by repetition
    not_carried: list[str] = field(default_factory=list)   # "name (reason)"

    def line(self) -> str:
        head = f"warm start: {len(self.copied)} tensors copied"
        if self.extended:
            head += f", {', '.join(self.extended)} extended by repeating the learned positions"
        rest = "; not carried over: " + ", ".join(_grouped(self.not_carried)) if self.not_carried else \
            "; nothing left behind"
        return head + rest


def _grouped(entries: list[str]) -> list[str]:
    """'encoder.attention.0.fn.qk.weight (why)' for every layer -> one 'encoder.attention.*.fn.qk.weight
    (why, ×L)', so the line stays readable for deep models."""
    groups: dict[str, int] = {}
    for entry in entries:
        key = re.sub(r"\.\d+\.", ".*.", entry)
        groups[key] = groups.get(key, 0) + 1
    return [k if n == 1 else f"{k[:-1]}, ×{n})" for k, n in groups.items()]


def repeat_positions(source: torch.Tensor, rows: int, offset: int, source_offset: int) -> torch.Tensor:
    """A `rows`-row table whose learned part repeats the source's learned rows; the first
    `offset` rows (RoBERTa's unused padding rows) come from the source's own such rows."""
    learned = source[source_offset:]
    need = rows - offset
    reps = -(-need // learned.shape[0])
    head = source[:offset] if source_offset >= offset else torch.zeros(offset, source.shape[1], dtype=source.dtype)
    return torch.cat([head, learned.repeat(reps, 1)[:need]])


def warm_start(model: PretrainingModel, source: PretrainingModel) -> WarmStartReport:
    """Copy `source`'s tensors into `model` where names and shapes agree."""
    report = WarmStartReport()
    ours, theirs = model.state_dict(), source.state_dict()
    new = {}
    for name, tensor in ours.items():
        src = theirs.get(name)
        if src is None:
            report.not_carried.append(f"{name} (absent in the source)")
        elif src.shape == tensor.shape:
            new[name] = src
            report.copied.append(name)
        elif name == POSITIONS and src.shape[1] == tensor.shape[1] and tensor.shape[0] > src.shape[0]:
            new[name] = repeat_positions(src, tensor.shape[0], model.cfg.position_offset,
                                         source.cfg.position_offset)
            report.extended.append(f"{name} ({src.shape[0]} -> {tensor.shape[0]} rows)")
        else:
            report.not_carried.append(f"{name} (shape {tuple(src.shape)} -> {tuple(tensor.shape)})")
    report.not_carried += [f"{k} (not in this model)" for k in theirs if k not in ours]
    with torch.no_grad():
        for name, value in new.items():
            ours[name].copy_(value.to(ours[name].device, ours[name].dtype))
    return report
