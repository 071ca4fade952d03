"""`from_hf`: any HF model this library reads, by its class. BigBird's conversion builds on
the BERT names of `core.interop.hf`, so the choice between them sits here, above both."""
from __future__ import annotations

from typing import Any

from core.interop.hf import from_hf_bert
from core.interop.hf_bigbird import from_hf_bigbird
from core.model import PretrainingModel


def from_hf(hf_model: Any) -> PretrainingModel:
    """Our PretrainingModel with the weights of an HF BERT/ALBERT/RoBERTa/ModernBERT/BigBird model.
    A model without the pretraining heads (e.g. BertForSequenceClassification after
    fine-tuning) is refused in one line naming them; `load_arm` reads such a directory whole."""
    if type(hf_model).__name__.startswith("BigBird"):
        return from_hf_bigbird(hf_model)
    return from_hf_bert(hf_model)
