"""Downstream fine-tuning of any arm (full or LSH attention, shared, reversible, factorized).

- `tasks`, `tsv`: task specs (`korsts`, `question_pair`, `tsv:DIR:...`) and their TSV splits;
  `klue`: `klue-ner` and `klue-nli` (KLUE's layouts, one file split by a hash).
- `tagging`: token classification on character-level BIO tags: pieces <-> characters through
  SentencePiece offsets, entity-level F1 (seqeval's definition) on the characters.
- `encode`: [CLS] a [SEP] b [SEP] with the arm's own SentencePiece tokenizer.
- `model`: `TaskModel`, a classification or regression head on the pretrained encoder;
  `TokenTaggingModel`, a tag per token.
- `metrics`: accuracy (Wilson interval), Pearson and Spearman (Fisher-z intervals).
- `config`, `loop`: `FinetuneConfig`, `finetune` (best-dev checkpoint's test score) and
  `finetune_seeds` (mean ± standard error over seeds).
"""
from core.finetune.config import FinetuneConfig
from core.finetune.encode import encode_examples
from core.finetune.loop import FinetuneResult, SeedSummary, finetune, finetune_seeds
from core.finetune.metrics import Score, accuracy, correlations, mean_and_se, wilson
from core.finetune.model import TaskModel, TokenTaggingModel
from core.finetune.tagging import alignment_ceiling, entities, entity_f1
from core.finetune.tasks import KINDS, Example, Task, TaskError, TaskSpec, builtin_spec, parse_task, split_tasks
from core.finetune.tsv import load_task

__all__ = ["KINDS", "Example", "FinetuneConfig", "FinetuneResult", "Score", "SeedSummary", "Task", "TaskError",
           "TaskModel", "TaskSpec", "TokenTaggingModel", "accuracy", "alignment_ceiling", "builtin_spec", "correlations", "encode_examples", "entities", "entity_f1", "finetune",
           "finetune_seeds", "load_task", "mean_and_se", "parse_task", "split_tasks",
           "wilson"]
