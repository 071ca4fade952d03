"""Downstream fine-tuning of any arm (full or LSH attention, shared, reversible, factorized).

- `tasks`, `tsv`: task specs (`korsts`, `question_pair`, `tsv:DIR:...`) and their TSV splits;
  `klue`: `klue-ner` and `klue-nli` (KLUE's layouts, one file split by a hash).
- `tagging`: token classification on character-level BIO tags: pieces <-> characters through
  SentencePiece offsets, entity-level F1 (seqeval's definition) on the characters.
- `squad`, `span_qa`: extractive QA in SQuAD's JSON layout (`korquad`, `korquad:FILE`; one
  file split by article): windows cut on SentencePiece offsets, n-best decoding across
  windows, and KorQuAD's official exact match and character F1.
- `encode`: [CLS] a [SEP] b [SEP] with the arm's own SentencePiece tokenizer.
- `model`: `TaskModel`, a classification or regression head on the pretrained encoder;
  `TokenTaggingModel`, a tag per token; `SpanModel`, start and end logits per token.
- `metrics`: accuracy (Wilson interval), Pearson and Spearman (Fisher-z intervals).
- `config`, `loop`: `FinetuneConfig`, `finetune` (best-dev checkpoint's test score) and
  `finetune_seeds` (mean ± standard error over seeds).
"""
from core.finetune.config import FinetuneConfig
from core.finetune.encode import encode_examples
from core.finetune.loop import FinetuneResult, SeedSummary, finetune, finetune_seeds
from core.finetune.metrics import Score, accuracy, correlations, mean_and_se, wilson
from core.finetune.model import SpanModel, TaskModel, TokenTaggingModel
from core.finetune.span_qa import char_f1, exact_match, normalize_answer, span_ceiling, squad_scores
from core.finetune.squad import QAExample, split_counts, write_split
from core.finetune.tagging import alignment_ceiling, entities, entity_f1
from core.finetune.tasks import KINDS, Example, Task, TaskError, TaskSpec, builtin_spec, parse_task, split_tasks
from core.finetune.tsv import load_task

__all__ = ["KINDS", "Example", "FinetuneConfig", "FinetuneResult", "QAExample", "Score", "SeedSummary", "SpanModel",
           "Task", "TaskError", "TaskModel", "TaskSpec", "TokenTaggingModel", "accuracy", "alignment_ceiling",
           "builtin_spec", "char_f1", "correlations", "encode_examples", "entities", "entity_f1", "exact_match",
           "finetune", "finetune_seeds", "load_task", "mean_and_se", "normalize_answer", "parse_task",
           "span_ceiling", "split_counts", "split_tasks", "squad_scores", "wilson", "write_split"]
