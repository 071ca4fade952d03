"""Conversion to and from Hugging Face transformers (imported only when called).

- `hf`: `from_hf` (BERT, ALBERT, RoBERTa checkpoints into a `PretrainingModel`) and
  `to_hf` (full-attention, post-LN models back out), with logits equal within 1e-4.
"""
from core.interop.hf import from_hf, to_hf

__all__ = ["from_hf", "to_hf"]
