"""The normalisation layer of a model, chosen by its config: LayerNorm (with or without a
bias: ModernBERT has none) or RMSNorm (torch.nn.RMSNorm; NeoBERT). One place builds every
norm of the embeddings, the sublayers, the final norm and the MLM head alike."""
from __future__ import annotations

from torch import nn

from core.model.config import ModelConfig


def make_norm(cfg: ModelConfig, dim: int) -> nn.Module:
    if cfg.norm_layer == "rmsnorm":
        return nn.RMSNorm(dim, eps=cfg.layer_norm_eps)
    return nn.LayerNorm(dim, eps=cfg.layer_norm_eps, bias=cfg.norm_bias)
