"""Warm starts: begin an arm from another arm's weights where shapes allow, e.g. a
512-token `roberta` continued as `roberta-lsh` at 4096 tokens. Everything that cannot be
carried is listed, never dropped silently.

A longer position table has two published recipes (`positions`):

- "repeat" (the default), Longformer's (Beltagy et al. 2020, section 5): the new table is
  the source's learned rows copied over and over, so that every position starts where the
  source's attention already knows what a local offset looks like. Longformer reports
  that this made continued pretraining converge much faster than random positions.
- "random", KoBigBird's (monologg/KoBigBird, pretrain/README): warm-started from BERT with
  only the 4,096-row position table initialised at random; the 512 learned rows are
  deliberately not loaded. Every other tensor is still copied.

A table of the same length is copied as any other tensor, whatever the recipe.

Shared-QK attention (LSH, `full-shared-qk`) has one projection where the source has a query
and a key. It starts from the source's query projection: the Reformer's keys are its
normalised queries (Kitaev et al. 2020, section 2), so the source's learned queries are the
nearest thing it has. Starting it at random instead would leave an LSH arm of a warm-started
comparison with a fresh attention and the others with trained ones, and count that against
LSH. The source's key projection is listed as not carried, the query as used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from core.model import PretrainingModel
from core.registry import unknown_name_error

POSITIONS = "embeddings.position.weight"
POSITION_RECIPES = ("repeat", "random")   # Longformer's, KoBigBird's
SHARED_QK, QUERY = ".fn.qk.", ".fn.query."  # shared-QK attention's projection, and where it starts from


@dataclass
class WarmStartReport:
    copied: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)      # position tables filled by repetition
    fresh: list[str] = field(default_factory=list)         # longer position tables left at their init
    from_query: list[str] = field(default_factory=list)    # shared-QK projections started from the query's
    not_carried: list[str] = field(default_factory=list)   # "name (reason)"

    def line(self) -> str:
        head = f"warm start: {len(self.copied)} tensors copied"
        if self.extended:
            head += f", {', '.join(self.extended)} extended by repeating the learned positions"
        if self.fresh:
            head += f", {', '.join(self.fresh)} left at its random initialisation"
        if self.from_query:
            head += f", {', '.join(_grouped(self.from_query))} from the source's query projection (shared QK)"
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
    return [k if n == 1 else f"{k[:-1]}, ×{n})" if k.endswith(")") else f"{k} (×{n})" for k, n in groups.items()]


def repeat_positions(source: torch.Tensor, rows: int, offset: int, source_offset: int) -> torch.Tensor:
    """A `rows`-row table whose learned part repeats the source's learned rows; the first
    `offset` rows (RoBERTa's unused padding rows) come from the source's own such rows."""
    learned = source[source_offset:]
    need = rows - offset
    reps = -(-need // learned.shape[0])
    head = source[:offset] if source_offset >= offset else torch.zeros(offset, source.shape[1], dtype=source.dtype)
    return torch.cat([head, learned.repeat(reps, 1)[:need]])


def warm_start(model: PretrainingModel, source: PretrainingModel, positions: str = "repeat") -> WarmStartReport:
    """Copy `source`'s tensors into `model` where names and shapes agree; a longer position
    table by `positions` ("repeat" or "random", see the module docstring)."""
    if positions not in POSITION_RECIPES:
        raise unknown_name_error("position recipe", positions, POSITION_RECIPES)
    report = WarmStartReport()
    ours, theirs = model.state_dict(), source.state_dict()
    new = {}
    for name, tensor in ours.items():
        src = theirs.get(name)
        query = theirs.get(name.replace(SHARED_QK, QUERY)) if SHARED_QK in name else None
        if src is None and query is not None and query.shape == tensor.shape:
            new[name] = query
            report.from_query.append(name)
        elif src is None:
            report.not_carried.append(f"{name} (absent in the source)")
        elif src.shape == tensor.shape:
            new[name] = src
            report.copied.append(name)
        elif name == POSITIONS and src.shape[1] == tensor.shape[1] and tensor.shape[0] > src.shape[0]:
            rows = f"{name} ({src.shape[0]} -> {tensor.shape[0]} rows)"
            if positions == "random":
                report.fresh.append(rows)
            else:
                new[name] = repeat_positions(src, tensor.shape[0], model.cfg.position_offset,
                                             source.cfg.position_offset)
                report.extended.append(rows)
        else:
            report.not_carried.append(f"{name} (shape {tuple(src.shape)} -> {tuple(tensor.shape)})")
    used = {k.replace(SHARED_QK, QUERY) for k in report.from_query}
    report.not_carried += [f"{k} (not in this model)" for k in theirs if k not in ours and k not in used]
    with torch.no_grad():
        for name, value in new.items():
            ours[name].copy_(value.to(ours[name].device, ours[name].dtype))
    return report
