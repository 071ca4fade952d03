"""DataConfig: every data choice that BERT, ALBERT, RoBERTa and KoBigBird make differently."""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.config_base import StrictConfig, check_choice

# Fixed ids, the same for every tokenizer this project trains (asserted after training).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)
FIRST_ORDINARY_ID = 5

PACKINGS = ("segment-pair", "sentence-pair", "full-sentences", "doc-sentences")
SENTENCE_TASKS = ("none", "nsp", "sop")
MASKINGS = ("static", "dynamic")
MASK_UNITS = ("token", "whole-word", "ngram")
TOKENIZER_TYPES = ("unigram", "bpe")
SENTENCE_SPLITTERS = ("regex", "kss")   # core.data.sentences.get_splitter
# fields added after caches, checkpoints and results rows existed: left out of `to_dict`
# (so of every cache key, checkpoint identity and row key) at these defaults, so that what
# was built before they existed keeps its identity (as core.train.checkpoint.LATER_DEFAULTS)
LATER_DEFAULTS = {"sentence_splitter": "regex", "text_column": "text", "eval_mask_prob": 0.15, "mask_prob_end": None}
MIN_MAX_LENGTH = 8
DEFAULT_COVERAGE = 0.9995  # SentencePiece's recommendation for CJK scripts


class DataError(ValueError):
    """A data problem the user can fix (corpus, tokenizer, cache); the message names the
    file and the fix. A run stops at the first one: every arm would meet it again."""  # [CLS] a [SEP] b [SEP] plus room for a few pieces


class CorpusError(DataError):
    """A corpus problem the user can fix; the message names the file and the fix."""


@dataclass(frozen=True)
class DataConfig(StrictConfig):
    # tokenizer
    vocab_size: int = 8000            # ReforBERT's Korean vocabulary size
    tokenizer_type: str = "unigram"   # unigram | bpe
    tokenizer_path: str = ""          # an existing SentencePiece .model to load instead of training
    character_coverage: float = DEFAULT_COVERAGE  # 0: automatic, fitted to the vocabulary
    tokenizer_max_sentences: int = 1_000_000
    # corpus reading: both are part of the data's identity (the corpus fingerprint)
    sentence_splitter: str = "regex"  # regex (Korean and English punctuation) | kss (extra `kss`)
    text_column: str = "text"         # the text column of Parquet / datasets, the field of JSON lines
    # examples
    max_length: int = 128
    packing: str = "segment-pair"     # segment-pair | sentence-pair | full-sentences | doc-sentences
    sentence_task: str = "nsp"        # none | nsp | sop
    short_seq_prob: float = 0.1       # BERT: sometimes train on shorter sequences
    # masking
    masking: str = "static"           # static (dupe_factor copies, BERT) | dynamic (RoBERTa)
    dupe_factor: int = 10
    mask_unit: str = "token"          # token | whole-word | ngram (n-grams of whole words)
    max_ngram: int = 3
    mask_prob: float = 0.15
    replace_prob: float = 0.8         # of masked: -> [MASK]
    random_prob: float = 0.1          # of masked: -> random token; the rest are kept
    max_predictions: int = 0          # per sequence; 0 -> ceil(max_length * the highest rate)
    # a masking-rate schedule (dynamic masking): the rate goes linearly from mask_prob to this
    # over the training budget (in tokens under a token budget; mmBERT lowers its rate from 30%
    # to 5%); None keeps mask_prob throughout. The held-out sets stay at eval_mask_prob
    mask_prob_end: float | None = None
    # the held-out sets' masking rate, whatever the training rate: arms that train at 15%,
    # 30% or 40% are scored on the same masks (ModernBERT and Ettin evaluate at 15%)
    eval_mask_prob: float = 0.15
    # split and reproducibility
    eval_fraction: float = 0.05       # of documents, held out
    max_eval_examples: int = 2000
    seed: int = 12345

    def __post_init__(self) -> None:
        if self.max_predictions == 0:
            top = max(self.mask_prob, self.mask_prob_end or 0.0)  # a schedule's highest rate
            object.__setattr__(self, "max_predictions", math.ceil(self.max_length * top))
        self.validate()

    def validate(self) -> None:
        check_choice("packing", self.packing, PACKINGS)
        check_choice("sentence_task", self.sentence_task, SENTENCE_TASKS)
        check_choice("masking", self.masking, MASKINGS)
        check_choice("mask_unit", self.mask_unit, MASK_UNITS)
        check_choice("tokenizer_type", self.tokenizer_type, TOKENIZER_TYPES)
        check_choice("sentence_splitter", self.sentence_splitter, SENTENCE_SPLITTERS)
        if not self.text_column:
            raise ValueError("text_column must name a column (default 'text')")
        if self.max_length < MIN_MAX_LENGTH:
            raise ValueError(f"max_length={self.max_length} is below the minimum of {MIN_MAX_LENGTH} "
                             "([CLS], two segments, two [SEP]s); raise max_length")
        if self.packing in ("full-sentences", "doc-sentences") and self.sentence_task != "none":
            raise ValueError(
                f"packing={self.packing!r} builds single-segment inputs, so sentence_task="
                f"{self.sentence_task!r} has no pair to classify; use sentence_task='none' or "
                "packing='segment-pair'/'sentence-pair'"
            )
        if self.vocab_size <= len(SPECIAL_TOKENS) + 1:
            raise ValueError(f"vocab_size={self.vocab_size} leaves no room beside the {len(SPECIAL_TOKENS)} special tokens")
        for name in ("mask_prob", "eval_mask_prob"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.mask_prob_end is not None:
            if isinstance(self.mask_prob_end, bool) or not isinstance(self.mask_prob_end, int | float) \
                    or not 0 < self.mask_prob_end < 1:
                raise ValueError(f"mask_prob_end must be in (0, 1) (or None: no schedule), got {self.mask_prob_end!r}")
            if self.masking != "dynamic":
                raise ValueError(f"mask_prob_end={self.mask_prob_end} schedules the masking rate while training, "
                                 f"which needs masks drawn as training goes: masking='dynamic' (static masks are "
                                 f"drawn once, at mask_prob, when the data is built)")
        if self.replace_prob < 0 or self.random_prob < 0 or self.replace_prob + self.random_prob > 1:
            raise ValueError(f"replace_prob ({self.replace_prob}) + random_prob ({self.random_prob}) must be within [0, 1]")
        if self.dupe_factor < 1 or self.max_ngram < 1 or self.max_predictions < 1:
            raise ValueError("dupe_factor, max_ngram and max_predictions must be >= 1")
        if not 0 <= self.character_coverage <= 1:
            raise ValueError(f"character_coverage must be in (0, 1], or 0 for automatic; got {self.character_coverage}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if not 0 <= self.short_seq_prob <= 1:
            raise ValueError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")

    def to_dict(self) -> dict:
        """Every field, except later ones at their defaults (LATER_DEFAULTS)."""
        return {k: v for k, v in super().to_dict().items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}

    def for_evaluation(self) -> DataConfig:
        """The config the held-out sets are masked with: the training config at the
        evaluation masking rate (and the prediction cap it implies), without a schedule."""
        if self.eval_mask_prob == self.mask_prob and self.mask_prob_end is None:
            return self
        return self.replace(mask_prob=self.eval_mask_prob, mask_prob_end=None,
                            max_predictions=math.ceil(self.max_length * self.eval_mask_prob))

    def mask_prob_at(self, fraction: float) -> float:
        """The training masking rate at `fraction` of the budget used: mask_prob at 0,
        mask_prob_end at 1, linear between (mask_prob throughout without a schedule)."""
        if self.mask_prob_end is None:
            return self.mask_prob
        x = min(1.0, max(0.0, fraction))
        return self.mask_prob + (self.mask_prob_end - self.mask_prob) * x

    @property
    def pairs(self) -> bool:
        return self.packing in ("segment-pair", "sentence-pair")
