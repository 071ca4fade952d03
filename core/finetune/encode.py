"""Examples -> padded tensors with the arm's own tokenizer and the variant's conventions:
[CLS] a [SEP] b [SEP]; token types 0/1 where the model has two segment types, all 0 for
RoBERTa-style models (type_vocab_size <= 1). Pairs longer than `max_length` lose tokens
from the longer side first (BERT's rule). LSH models pad to their bucket multiple inside
the attention block, so nothing here depends on the attention kind.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.data import CLS, PAD, SEP, Tokenizer
from core.finetune.tasks import Example
from core.model import IGNORE_INDEX as IGNORE


@dataclass
class Encoded:
    ids: list[list[int]]
    types: list[list[int]]
    labels: list                  # a class or score per row; token classification: a label per token
    # token classification (core.finetune.tagging): each row's text, its pieces' character
    # spans, and the gold tag of every character, which the score compares with
    texts: list[str] | None = None
    offsets: list[list[tuple[int, int]]] | None = None
    gold: list[list[int]] | None = None

    @property
    def targets(self) -> list:
        """What predictions are scored against: per-row labels, or per-character tags."""
        return self.labels if self.gold is None else self.gold

    def head(self, n: int) -> Encoded:
        """The first n rows (a capped training split)."""
        cut = lambda x: None if x is None else x[:n]  # noqa: E731
        return Encoded(self.ids[:n], self.types[:n], self.labels[:n], cut(self.texts), cut(self.offsets),
                       cut(self.gold))


def _truncate(a: list[int], b: list[int], budget: int) -> None:
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()


def encode_examples(examples: list[Example], tokenizer: Tokenizer, max_length: int, type_ids: bool) -> Encoded:
    pairs = examples[0].text_b is not None if examples else False
    a_all = tokenizer.encode([e.text_a for e in examples])
    b_all = tokenizer.encode([e.text_b or "" for e in examples]) if pairs else [[] for _ in examples]
    out = Encoded([], [], [e.label for e in examples])
    for a, b in zip(a_all, b_all):
        _truncate(a, b, max_length - (3 if pairs else 2))
        first = [CLS, *a, SEP]
        second = [*b, SEP] if pairs else []
        out.ids.append(first + second)
        out.types.append([0] * len(first) + [1 if type_ids else 0] * len(second))
    return out


def batches(enc: Encoded, batch_size: int, regression: bool, order: list[int] | None = None
            ) -> Iterator[dict[str, torch.Tensor]]:
    """Padded to each batch's longest row (short pairs do not pay for the longest in the set)."""
    order = list(range(len(enc.ids))) if order is None else order
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(enc.ids[i]) for i in rows)
        ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(enc.ids[i])
            ids[r, :n], types[r, :n], mask[r, :n] = torch.tensor(enc.ids[i]), torch.tensor(enc.types[i]), 1
        if enc.gold is not None:  # a label per token, IGNORE where padded
            labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
            for r, i in enumerate(rows):
                labels[r, :len(enc.labels[i])] = torch.tensor(enc.labels[i])
        else:
            labels = torch.tensor([enc.labels[i] for i in rows], dtype=torch.float if regression else torch.long)
        yield {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}
