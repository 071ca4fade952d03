"""Held-out evaluation with fixed masks and fixed LSH hashing, so arms are comparable.

Every model with a sentence head is scored on BOTH NSP-style and SOP-style held-out
pairs, whatever it was trained on: ALBERT Table 5's cross-evaluation (SOP-trained
models solve NSP, NSP-trained models do not solve SOP).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.device import autocast, to_device
from core.model import IGNORE_INDEX, PretrainingModel

DEFAULT_HASH_SEED = 1234


@torch.no_grad()
def evaluate(model: PretrainingModel, data, device: torch.device, batch_size: int = 32,
             hash_seed: int = DEFAULT_HASH_SEED) -> dict:
    was_training = model.training
    model.eval()
    out: dict = {"eval_mlm_loss": None, "eval_mlm_acc": None, "eval_sentence_loss": None,
                 "eval_sentence_acc": None, "eval_nsp_acc": None, "eval_sop_acc": None}
    try:
        with model.seeded_hashing(hash_seed):
            loss_sum = loss_sq = correct = count = 0.0
            s_loss = s_correct = s_count = 0.0
            for batch in data.eval_batches("mlm", batch_size):
                batch = to_device(batch, device)
                if model.sentence_head is None:
                    batch.pop("sentence_labels", None)
                with autocast(device):
                    o = model(**batch)
                labels = batch["mlm_labels"][batch["mlm_labels"] != IGNORE_INDEX]
                n = labels.numel()
                if n:
                    per_token = F.cross_entropy(o.mlm_logits.float(), labels, reduction="none")
                    loss_sum += float(per_token.sum())
                    loss_sq += float((per_token ** 2).sum())
                    correct += float((o.mlm_logits.argmax(-1) == labels).sum())
                    count += n
                if o.sentence_loss is not None:
                    b = batch["sentence_labels"].numel()
                    s_loss += float(o.sentence_loss) * b
                    s_correct += float((o.sentence_logits.argmax(-1) == batch["sentence_labels"]).sum())
                    s_count += b
            if count:
                out["eval_mlm_loss"] = loss_sum / count
                out["eval_mlm_acc"] = correct / count
                out["eval_mlm_ppl"] = math.exp(min(out["eval_mlm_loss"], 50))
                # standard error of the mean token loss: the sampling noise of this eval set
                var = max(loss_sq / count - out["eval_mlm_loss"] ** 2, 0.0)
                out["eval_mlm_loss_se"] = math.sqrt(var / count)
                out["eval_mlm_tokens"] = int(count)
            if s_count:
                out["eval_sentence_loss"] = s_loss / s_count
                out["eval_sentence_acc"] = s_correct / s_count
            if model.sentence_head is not None:
                for task in ("nsp", "sop"):
                    hits = total = 0
                    for batch in data.eval_batches(task, batch_size):
                        batch = to_device(batch, device)
                        with autocast(device):
                            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                           mlm_labels=torch.full_like(batch["input_ids"], IGNORE_INDEX),
                                           ).sentence_logits  # no MLM rows: sentence head only
                        hits += int((logits.argmax(-1) == batch["sentence_labels"]).sum())
                        total += batch["sentence_labels"].numel()
                    out[f"eval_{task}_acc"] = hits / total if total else None
    finally:
        model.train(was_training)
    return out
