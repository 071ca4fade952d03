"""Token, position and segment embeddings, optionally factorized (ALBERT).

With E < H the V x E table is the only vocabulary-sized matrix; a single E -> H
projection lifts it into the encoder. LayerNorm is applied in E space before the
projection, exactly as ALBERT does, so that parity with HF holds in both layouts.
"""
from __future__ import annotations

import torch
from torch import nn

from core.model.config import ModelConfig
from core.model.dropout import Dropout
from core.model.norms import make_norm


class Embeddings(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        E = cfg.embedding_size
        self.word = nn.Embedding(cfg.vocab_size, E)
        # rotary positions rotate queries and keys in the attention instead (core.model.rope)
        learned = cfg.positions == "learned"
        self.position = nn.Embedding(cfg.max_position_embeddings + cfg.position_offset, E) if learned else None
        self.token_type = nn.Embedding(cfg.type_vocab_size, E) if cfg.type_vocab_size else None
        self.norm = make_norm(cfg, E)
        self.dropout = Dropout(cfg.hidden_dropout)
        self.project = nn.Linear(E, cfg.hidden_size, bias=cfg.bias) if cfg.factorized else None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        T = input_ids.shape[1]
        if T > self.cfg.max_position_embeddings:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings "
                f"({self.cfg.max_position_embeddings}); raise it in the ModelConfig or truncate"
            )
        x = self.word(input_ids)
        if self.position is not None:
            positions = torch.arange(self.cfg.position_offset, self.cfg.position_offset + T, device=input_ids.device)
            x = x + self.position(positions)[None]
        if self.token_type is not None:
            if token_type_ids is None:
                x = x + self.token_type.weight[0]
            else:
                x = x + self.token_type(token_type_ids)
        x = self.dropout(self.norm(x))
        return self.project(x) if self.project is not None else x
