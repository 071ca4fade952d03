"""Synthetic batches and the one training step that speed and memory both time."""
from __future__ import annotations

import torch

from core.device import autocast
from core.model import IGNORE_INDEX, ModelConfig, PretrainingModel


def make_batch(cfg: ModelConfig, batch_size: int, seq_len: int, mask_prob: float = 0.15,
               seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """A synthetic pretraining batch: speed and memory do not depend on token values."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (batch_size, seq_len), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    picked = torch.rand(batch_size, seq_len, generator=g) < mask_prob
    picked[:, 0] = True  # at least one prediction per row
    labels[picked] = ids[picked]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mlm_labels": labels}
    if cfg.type_vocab_size:
        types = torch.zeros_like(ids)
        types[:, seq_len // 2:] = 1 if cfg.type_vocab_size > 1 else 0
        batch["token_type_ids"] = types
    if cfg.sentence_head:
        batch["sentence_labels"] = torch.randint(0, 2, (batch_size,), generator=g)
    return {k: v.to(device) for k, v in batch.items()}



def train_step(model: PretrainingModel, opt: torch.optim.Optimizer, batch: dict, device: torch.device) -> None:
    opt.zero_grad(set_to_none=True)
    with autocast(device):
        loss = model(**batch).loss
    loss.backward()
    opt.step()


