"""A task head on any pretrained arm: pooled [CLS] -> dropout -> linear (classes, or one
score for regression). The arm's own pooler is reused when it has one (BERT/ALBERT
pretrained it with NSP/SOP); RoBERTa-style arms get a fresh one, as fairseq does.
`TokenTaggingModel`: a tag per token; `SpanModel`: a start and an end logit per token
(extractive question answering)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.model import IGNORE_INDEX, PretrainingModel


class TaskModel(nn.Module):
    def __init__(self, encoder: PretrainingModel, num_labels: int, dropout: float = 0.1):
        super().__init__()
        H = encoder.cfg.hidden_size
        self.encoder = encoder
        self.pooler = encoder.sentence_head.pooler if encoder.sentence_head is not None else nn.Linear(H, H)
        self.dropout = nn.Dropout(dropout)
        self.classifier = _classifier(encoder, num_labels)
        self.num_labels = num_labels

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = _encode(self.encoder, input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(torch.tanh(self.pooler(h[:, 0]))))
        if self.num_labels == 1:
            logits = logits.squeeze(-1)
        loss = None
        if labels is not None:
            loss = F.mse_loss(logits.float(), labels) if self.num_labels == 1 else F.cross_entropy(logits.float(), labels)
        return loss, logits


class TokenTaggingModel(nn.Module):
    """A tag per token: each hidden state -> dropout -> linear (BERT's NER head). The loss
    is the mean over labelled pieces only (IGNORE marks specials, padding and pieces that
    cover no character of their own)."""

    def __init__(self, encoder: PretrainingModel, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = _classifier(encoder, num_labels)
        self.num_labels = num_labels

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        logits = self.classifier(self.dropout(_encode(self.encoder, input_ids, attention_mask, token_type_ids)))
        loss = None
        if labels is not None:
            picked = labels != IGNORE_INDEX
            loss = F.cross_entropy(logits.float()[picked], labels[picked], reduction="sum") / picked.sum().clamp(min=1)
        return loss, logits


class SpanModel(nn.Module):
    """Extractive QA (BERT's SQuAD head, HF's `qa_outputs`): each hidden state -> linear ->
    (start, end) logits; no dropout of its own, as HF's BertForQuestionAnswering. Padding
    positions get a logit of -10^4, so they are never a span's edge. The loss is the mean
    of the start and end cross-entropies over the window's positions (labels (B, 2): the
    answer's first and last piece, or (0, 0), [CLS], where the window does not hold it)."""

    def __init__(self, encoder: PretrainingModel):
        super().__init__()
        self.encoder = encoder
        self.qa_outputs = _classifier(encoder, 2)
        self.num_labels = 2

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = _encode(self.encoder, input_ids, attention_mask, token_type_ids)
        logits = self.qa_outputs(h).float().masked_fill(~attention_mask.bool()[..., None], -1e4)
        loss = None
        if labels is not None:
            loss = (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2
        return loss, logits


def _classifier(encoder: PretrainingModel, num_labels: int) -> nn.Linear:
    """A task's output layer, initialised as BERT's heads are (normal at the encoder's range, zero bias)."""
    layer = nn.Linear(encoder.cfg.hidden_size, num_labels)
    nn.init.normal_(layer.weight, std=encoder.cfg.initializer_range)
    nn.init.zeros_(layer.bias)
    return layer


def _encode(encoder: PretrainingModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None) -> torch.Tensor:
    """The encoder's hidden states; a model without segment embeddings reads pairs as one sequence."""
    if not encoder.cfg.type_vocab_size:
        token_type_ids = None
    return encoder.encode(input_ids, attention_mask, token_type_ids)
