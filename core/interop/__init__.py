"""Conversion, export and loading of trained arms. transformers and tokenizers (the `hf`
extra) are imported only when called, through `core.extras`: without them the native format
still exports and loads every arm, and the HF format fails in one line naming the extra.

- `hf`: `from_hf` (BERT, ALBERT, RoBERTa checkpoints into a `PretrainingModel`) and
  `to_hf` (full-attention, post-LN models back out), with logits equal within 1e-4.
- `hf_tokenizer`: a transformers fast tokenizer with the same ids as our SentencePiece one.
- `native`: the library's own format (config JSON + safetensors + tokenizer), for any arm.
- `export`: `export_arm` (HF where transformers is installed and can hold the arm, native
  otherwise, saying why) and `load_arm` (either format, and HF directories that
  save_pretrained wrote after fine-tuning); `staging`: the unique directories it builds in.
- `warm_start`: start a model from another's weights; a longer position table repeated
  (Longformer) or left random (KoBigBird).
"""
from core.interop.convert import from_hf
from core.interop.export import (
    FORMATS,
    ExportResult,
    LoadedArm,
    check_loadable,
    choose_format,
    export_arm,
    load_arm,
    max_abs_diff,
)
from core.interop.hf import export_problems, to_hf
from core.interop.hf_tokenizer import build_hf_tokenizer
from core.interop.native import MARKER, save_native
from core.interop.warm_start import WarmStartReport, warm_start

__all__ = ["FORMATS", "MARKER", "ExportResult", "LoadedArm", "WarmStartReport", "build_hf_tokenizer", "check_loadable",
           "choose_format", "export_arm", "export_problems", "from_hf", "load_arm", "max_abs_diff", "save_native",
           "to_hf", "warm_start"]
