"""FinetuneConfig: the short fine-tuning run's budget, optimiser and early stopping."""
from __future__ import annotations

from dataclasses import dataclass

from core.config_base import StrictConfig
from core.device import check_precision


@dataclass(frozen=True)
class FinetuneConfig(StrictConfig):
    max_steps: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1               # fraction of max_steps
    clip_norm: float = 1.0            # 0 disables clipping
    eval_every: int = 0               # steps between dev evaluations; 0 -> max_steps // 5
    patience: int = 2                 # dev evaluations without improvement before stopping (only in the
                                      # second half of the budget); 0 = never
    max_length: int = 128             # tokens per (pair) example, specials included; span QA: per window
    # span QA (kind span-qa, core.finetune.span_qa): BERT's SQuAD windows and decoding
    max_query_len: int = 64           # question pieces kept (and at most half the window); longer ones are cut
    doc_stride: int = 0               # passage pieces between window starts; 0 = half of the window's passage room
    max_answer_len: int = 30          # pieces in a predicted answer
    n_best: int = 20                  # candidates kept per question across its windows
    predictions_dir: str = ""         # span QA: write the test predictions ({id: text}, the official format)
                                      # to DIR/TASK/finetune-seed-S/predictions.json; "" = not written
    dropout: float = 0.1
    eval_batch_size: int = 64
    max_train_examples: int = 0       # 0 = the whole train split
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"           # core.device: auto (bf16 on CUDA, fp32 on a CPU), bf16 or fp32
    hash_seed: int = 1234             # fixed LSH buckets for dev/test predictions
    unpad: bool = True                # pad tokens skip the linear layers (core.model.unpad); same outputs

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 4:
            raise ValueError(f"max_length must be >= 4 ([CLS] a [SEP] b [SEP]), got {self.max_length}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of max_steps in [0, 1), got {self.warmup}")
        if self.eval_every < 0 or self.patience < 0 or self.max_train_examples < 0 or self.doc_stride < 0:
            raise ValueError("eval_every, patience, max_train_examples and doc_stride must be >= 0")
        for name in ("max_query_len", "max_answer_len", "n_best"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_precision(self.precision)

    @property
    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.max_steps // 5)
