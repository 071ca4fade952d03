"""Opt-in `torch.compile` of a PretrainingModel, part by part, with a clean eager fallback.

What is compiled is every piece with static shapes: the embeddings, each attention and
feed-forward sublayer (and their reversible branches) and the sentence head. The parts
with data-dependent shapes stay eager on purpose: the `mask.all()` test and the sparse
MLM head (its row count changes every batch) would only cause graph breaks and
recompiles. Compiling in place keeps parameter names and the state dict unchanged, so
checkpoints and HF interop do not see the difference.

Inductor needs a C++ compiler on CPU (and Triton on CUDA). When compilation fails the
whole model runs eagerly from then on, after one one-line warning; an error that eager execution
raises too is a real error and is re-raised.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import nn

from core.errors import first_line


class _CompiledOrEager:
    def __init__(self, fn: Callable, name: str, state: dict):
        self.eager, self.compiled, self.name = fn, torch.compile(fn), name
        self.state = state  # shared by a model's parts: one failure, one warning, all eager

    def __call__(self, *args, **kwargs):
        if self.state["failed"]:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure means "run eagerly"
            out = self.eager(*args, **kwargs)  # a genuine error raises here again
            self.state["failed"] = True
            reason = first_line(err, 200)
            warnings.warn(f"compile=True: torch.compile failed for {self.name} ({reason}); running it eagerly. "
                          "On CPU inductor needs a C++ compiler (g++); set compile=False to silence this.",
                          RuntimeWarning, stacklevel=2)
            return out


def _compile_in_place(module: nn.Module, state: dict, method: str = "forward") -> None:
    original = getattr(module, method)
    wrapper = _CompiledOrEager(original, type(module).__name__, state)
    setattr(module, method, functools.update_wrapper(wrapper, original))


def compile_model(model: nn.Module) -> nn.Module:
    """Compile `model`'s static-shape parts in place and return it (idempotent)."""
    if getattr(model, "_compiled_parts", False):
        return model
    parts: list[nn.Module] = [model.embeddings]
    if model.sentence_head is not None:
        parts.append(model.sentence_head)
    parts += list(model.encoder.attention) + list(model.encoder.ffn)
    if model.encoder.final_norm is not None:
        parts.append(model.encoder.final_norm)
    state = {"failed": False}
    for part in parts:
        _compile_in_place(part, state)
    for sublayer in (*model.encoder.attention, *model.encoder.ffn):
        _compile_in_place(sublayer, state, "branch")  # what the reversible encoder calls
    model._compiled_parts = True
    return model
