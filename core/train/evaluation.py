"""Held-out evaluation with fixed masks and fixed LSH hashing, so arms are comparable.

Every model with a sentence head is scored on BOTH NSP-style and SOP-style held-out
pairs, whatever it was trained on: ALBERT Table 5's cross-evaluation (SOP-trained
models solve NSP, NSP-trained models do not solve SOP).

With `per_example=True` the scores carry what paired statistics need: each held-out
example's MLM loss sum and predicted-token count, and each pair's right/wrong, so that
two arms scored on the same examples can be compared example by example.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.device import autocast, to_device
from core.model import IGNORE_INDEX, PretrainingModel
from core.train.config import DEFAULT_HASH_SEED


@torch.no_grad()
def evaluate(model: PretrainingModel, data, device: torch.device, batch_size: int = 32,
             hash_seed: int = DEFAULT_HASH_SEED, per_example: bool = False, mlm_limit: int | None = None,
             precision: str = "auto") -> dict:
    """Scores on the held-out sets; with `mlm_limit`, the MLM loss on the first examples only
    (a point of the training curve, no sentence sets). `precision` as in training
    (core.device); losses are summed in fp32/fp64 whatever it is."""
    was_training = model.training
    model.eval()
    try:
        with model.seeded_hashing(hash_seed):
            out = _mlm_scores(model, data, device, batch_size, per_example, mlm_limit, precision)
            if mlm_limit:
                return out
            if model.sentence_head is not None:
                for task in ("nsp", "sop"):
                    out.update(_pair_scores(model, data, task, device, batch_size, per_example, precision))
            else:
                out.update(eval_nsp_acc=None, eval_sop_acc=None)
    finally:
        model.train(was_training)
    return out


def _readable(model: PretrainingModel, batch: dict) -> dict:
    """A model without segment embeddings (RoBERTa: type_vocab_size 1) reads held-out
    examples built for another arm (segment pairs, token types 0 and 1) as one sequence: the
    same examples and masks, so arms stay paired example by example."""
    if model.cfg.type_vocab_size < 2:
        batch.pop("token_type_ids", None)
    return batch


def _mlm_scores(model: PretrainingModel, data, device: torch.device, batch_size: int, per_example: bool,
                limit: int | None = None, precision: str = "auto") -> dict:
    sums: list[float] = []
    counts: list[int] = []
    token_losses: list[torch.Tensor] = []   # every predicted token's loss and label: the unigram reference
    token_labels: list[torch.Tensor] = []
    label_freq = torch.zeros(model.cfg.vocab_size, dtype=torch.long)
    correct = s_loss = s_correct = s_count = 0.0
    loss_sq = 0.0
    for batch in data.eval_batches("mlm", batch_size, limit):
        batch = _readable(model, to_device(batch, device))
        if model.sentence_head is None:
            batch.pop("sentence_labels", None)
        with autocast(device, precision):
            o = model(**batch)
        picked = batch["mlm_labels"] != IGNORE_INDEX
        labels = batch["mlm_labels"][picked]
        per_token = F.cross_entropy(o.mlm_logits.float(), labels, reduction="none")
        rows = picked.nonzero()[:, 0]  # the example each predicted token belongs to
        B = batch["input_ids"].shape[0]
        sums += torch.zeros(B, dtype=torch.float64, device=rows.device).index_add_(0, rows, per_token.double()).tolist()
        counts += picked.sum(1).tolist()
        loss_sq += float((per_token.double() ** 2).sum())
        token_losses.append(per_token.double().cpu())
        token_labels.append(labels.cpu())
        label_freq += torch.bincount(labels.cpu(), minlength=model.cfg.vocab_size)
        correct += float((o.mlm_logits.argmax(-1) == labels).sum())
        if o.sentence_loss is not None:
            b = batch["sentence_labels"].numel()
            s_loss += float(o.sentence_loss) * b
            s_correct += float((o.sentence_logits.argmax(-1) == batch["sentence_labels"]).sum())
            s_count += b
    # the accuracy of always predicting the most frequent masked token: the unigram stage
    majority = int(label_freq.max()) / max(int(label_freq.sum()), 1)
    prior = data.label_log_probs() if hasattr(data, "label_log_probs") else None
    unigram = unigram_reference(torch.cat(token_labels), torch.cat(token_losses), prior) if token_labels else {}
    return _mlm_summary(sums, counts, correct, loss_sq, per_example) | unigram | {"eval_mlm_majority_acc": majority,
        "eval_sentence_loss": s_loss / s_count if s_count else None,
        "eval_sentence_acc": s_correct / s_count if s_count else None}


def unigram_reference(labels: torch.Tensor, losses: torch.Tensor, prior=None) -> dict:
    """What a predictor that ignores the context scores on these held-out masked tokens.

    - `eval_mlm_unigram_entropy`: the entropy of the tokens' own frequencies, the loss of
      the best context-free predictor on exactly these tokens. It is a lower bound no model
      trained on other text reaches: on a few thousand tokens the plug-in entropy is far too
      optimistic (4,146 tokens, 1,054 distinct: 5.89 nats, against 6.57 for the training
      split's unigram on the same tokens).
    - `eval_mlm_unigram_xent`: the loss of the context-free predictor a model can learn, the
      training split's unigram (`prior`, log-probabilities; `PretrainingData.label_log_probs`)
      on the same tokens; without a prior, the entropy stands in for it.
    - `eval_mlm_unigram_gap`: the model's loss minus that, a mean of per-token differences,
      so its standard error (`_se`) is paired token by token. Below zero beyond noise, the
      model has learned something from the context: it has left the unigram stage."""
    if labels.numel() == 0:
        return {}
    freq = torch.bincount(labels).double()
    p = freq / freq.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    reference = -(torch.as_tensor(prior, dtype=torch.float64)[labels] if prior is not None else p.log()[labels])
    gap = losses.double() - reference
    n = gap.numel()
    se = float(gap.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return {"eval_mlm_unigram_entropy": entropy, "eval_mlm_unigram_xent": float(reference.mean()),
            "eval_mlm_unigram_gap": float(gap.mean()), "eval_mlm_unigram_gap_se": se}


def _mlm_summary(sums: list[float], counts: list[int], correct: float, loss_sq: float, per_example: bool) -> dict:
    count = sum(counts)
    if not count:
        return {"eval_mlm_loss": None, "eval_mlm_acc": None}
    loss = sum(sums) / count
    out = {"eval_mlm_loss": loss, "eval_mlm_acc": correct / count, "eval_mlm_ppl": math.exp(min(loss, 50)),
           # standard error of the mean token loss: the sampling noise of this eval set alone
           "eval_mlm_loss_se": math.sqrt(max(loss_sq / count - loss**2, 0.0) / count),
           "eval_mlm_tokens": int(count), "eval_mlm_examples": len(counts)}
    if per_example:
        out["eval_mlm_example_loss"] = [round(s, 5) for s in sums]
        out["eval_mlm_example_tokens"] = [int(c) for c in counts]
    return out


def _pair_scores(model: PretrainingModel, data, task: str, device: torch.device, batch_size: int,
                 per_example: bool, precision: str = "auto") -> dict:
    right: list[int] = []
    labels: list[int] = []
    for batch in data.eval_batches(task, batch_size):
        batch = _readable(model, to_device(batch, device))
        with autocast(device, precision):
            logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                           mlm_labels=torch.full_like(batch["input_ids"], IGNORE_INDEX),
                           ).sentence_logits  # no MLM rows: sentence head only
        right += (logits.argmax(-1) == batch["sentence_labels"]).int().tolist()
        labels += batch["sentence_labels"].tolist()
    # the share of the commoner class: a held-out set of a few hundred pairs is rarely 50/50,
    # and a head that always answers that class scores it ("above chance" must beat it)
    majority = max(labels.count(c) for c in set(labels)) / len(labels) if labels else None
    out = {f"eval_{task}_acc": sum(right) / len(right) if right else None, f"eval_{task}_n": len(right),
           f"eval_{task}_majority": majority}
    if per_example and right:
        out[f"eval_{task}_correct"] = "".join(map(str, right))
    return out
