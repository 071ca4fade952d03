"""Pre-training heads: MLM tied to the token table, and a sentence (NSP/SOP) head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.model.config import ModelConfig
from core.model.encoder import activation_fn
from core.model.norms import make_norm


class MLMHead(nn.Module):
    """transform (H -> E) + activation + LayerNorm(E), then the tied V x E decoder.

    With E = H this is BERT's head; with E < H it is ALBERT's, which projects down
    before decoding so the vocabulary matrix stays V x E. Called only on the rows that
    carry a label (sparse prediction): with 15% masking that skips 85% of the V-wide
    matmul, the largest single cost of a small model.
    """

    def __init__(self, cfg: ModelConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.embedding_size, bias=cfg.bias)
        # a GLU's activation gates; the head's transform takes the plain one (silu -> silu, as NeoBERT)
        self.act = activation_fn(cfg.activation)
        self.norm = make_norm(cfg, cfg.embedding_size)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.__dict__["_word"] = word_embeddings  # tied, not a second registration

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.act(self.dense(h)))
        return F.linear(h, self.__dict__["_word"].weight, self.bias)


class SentenceHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) and a 2-way classifier for NSP or SOP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.classifier = nn.Linear(cfg.hidden_size, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))
