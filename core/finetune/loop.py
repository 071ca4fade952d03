"""The fine-tuning loop: AdamW (core.optim), warm-up then linear decay, dev evaluation with
early stopping, and the test score of the best dev checkpoint (never the last one, never
the best test one).

Each seed starts from the same pretrained weights: the seed only drives the head's
initialisation, dropout and the order of training examples.

A dev score can be undefined (a correlation of constant predictions, `metrics`): such a
checkpoint ranks below every defined one, and a seed whose test score is undefined is
left out of the mean over seeds and counted (`SeedSummary.undefined`), never taken as 0.

Span QA (`core.finetune.span_qa`) trains on windows and scores questions: the dev
checkpoint is chosen on F1, and the test split reports exact match and F1 (on 0-100, as
KorQuAD's evaluator prints them), each question's pair of scores, and the predictions in the
official format, written to `predictions_dir` when one is given.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.data import Tokenizer
from core.device import autocast, pick_device, to_device
from core.finetune.config import FinetuneConfig
from core.finetune.encode import Encoded, batches, encode_examples
from core.finetune.metrics import Score, accuracy, chance_level, correlations, json_number, mean_and_se
from core.finetune.model import SpanModel, TaskModel, TokenTaggingModel
from core.finetune.span_qa import METRICS as SPAN_METRICS
from core.finetune.span_qa import (
    PREDICTIONS,
    SpanEncoded,
    decode,
    encode_span_qa,
    first_words_baseline,
    squad_scores,
    warn_truncated,
    write_predictions,
)
from core.finetune.span_qa import PRIMARY as PRIMARY_SPAN
from core.finetune.tagging import encode_tagged, entity_f1, gold_tags, read_out
from core.finetune.tasks import Task
from core.model import PretrainingModel
from core.optim import adamw, warmup_linear_decay


@dataclass
class FinetuneResult:
    task: str
    metric: str                    # the primary metric (accuracy; spearman for regression; f1 for tagging)
    seed: int
    test: Score                    # primary metric on test, at the best dev checkpoint (maybe undefined)
    dev: float                     # best dev value of the primary metric (NaN if every one was undefined)
    test_all: dict[str, Score]     # every metric on test (pearson and spearman for regression)
    best_step: int
    steps: int
    seconds: float
    dev_curve: list[tuple[int, float]] = field(default_factory=list)
    # span QA: the test predictions ({question id: text}), where they were written, and every
    # test question's score per metric (0-100), in the order `ids_key` fingerprints
    predictions: dict[str, str] | None = None
    predictions_path: str | None = None
    per_question: dict[str, list[float]] | None = None
    ids_key: str | None = None


def scores(task: Task, predictions: list | dict, gold: list) -> dict[str, Score]:
    """Token classification: `predictions` and `gold` are tags per character (read_out);
    span QA: {question id: text} and the questions."""
    if task.spec.span:
        return squad_scores(predictions, gold).scores
    if task.spec.regression:
        return correlations(predictions, gold)
    if task.spec.tagging:
        return {"f1": entity_f1(predictions, gold)}
    return {"accuracy": accuracy(predictions, gold)}


def primary_metric(task: Task) -> str:
    return "spearman" if task.spec.regression else "f1" if task.spec.tagging or task.spec.span else "accuracy"


def reported_metrics(task: Task) -> tuple[str, ...]:
    """The metrics a task reports (a results row holds each): its primary one, or span QA's
    exact match and F1."""
    return SPAN_METRICS if task.spec.span else (primary_metric(task),)


def task_chances(task: Task) -> dict[str, float]:
    """The test score of a model that learned nothing, per reported metric: the majority
    class's share, no correlation, no entity found (F1 0), or for span QA the passage's first
    words (`span_qa.first_words_baseline`)."""
    if task.spec.span:
        return first_words_baseline(task.splits["train"], task.splits["test"])
    if task.spec.tagging:
        return {primary_metric(task): 0.0}
    return {primary_metric(task): chance_level([ex.label for ex in task.splits["test"]], task.spec.regression)}


def task_chance(task: Task) -> float:
    return task_chances(task)[primary_metric(task)]


@torch.no_grad()
def predict(model: TaskModel | TokenTaggingModel, enc: Encoded, cfg: FinetuneConfig, regression: bool,
            device: torch.device) -> list:
    """A score or class per row; for token classification a class per token of the row."""
    model.eval()
    out: list = []
    with model.encoder.seeded_hashing(cfg.hash_seed):
        for batch in batches(enc, cfg.eval_batch_size, regression):
            batch = to_device(batch, device)
            batch.pop("labels")
            with autocast(device, cfg.precision):
                _, logits = model(**batch)
            out += (logits.float() if regression else logits.argmax(-1)).tolist()
    model.train()
    return out


@torch.no_grad()
def span_logits(model: SpanModel, enc: SpanEncoded, cfg: FinetuneConfig, device: torch.device
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each window's start and end logits over its own tokens."""
    model.eval()
    starts, ends = [], []
    with model.encoder.seeded_hashing(cfg.hash_seed):
        for batch in batches(enc, cfg.eval_batch_size, False):
            batch = to_device(batch, device)
            batch.pop("labels")
            with autocast(device, cfg.precision):
                _, logits = model(**batch)
            logits = logits.float().cpu().numpy()
            for row, n in zip(logits, batch["attention_mask"].sum(1).tolist()):
                starts.append(row[:n, 0])
                ends.append(row[:n, 1])
    model.train()
    return starts, ends


def span_predictions(model: SpanModel, enc: SpanEncoded, cfg: FinetuneConfig, device: torch.device) -> dict[str, str]:
    return decode(*span_logits(model, enc, cfg, device), enc, cfg.max_answer_len, cfg.n_best)


def _scored(task: Task, model, enc: Encoded, cfg: FinetuneConfig, device: torch.device) -> dict[str, Score]:
    """Every metric of `model` on one encoded split, scored on the original units: rows, the
    characters a tagging task's pieces came from, or the questions a span task's windows
    came from."""
    if task.spec.span:
        return scores(task, span_predictions(model, enc, cfg, device), enc.examples)
    predictions = predict(model, enc, cfg, task.spec.regression, device)
    if task.spec.tagging:
        return scores(task, read_out(predictions, enc, task.classes), gold_tags(enc, task.classes))
    return scores(task, predictions, enc.targets)


def encode_split(task: Task, examples: list, tokenizer: Tokenizer, max_length: int, type_ids: bool,
                 cfg: FinetuneConfig | None = None) -> Encoded:
    if task.spec.tagging:
        return encode_tagged(examples, tokenizer, max_length)
    if task.spec.span:
        cfg = cfg or FinetuneConfig()
        return encode_span_qa(examples, tokenizer, max_length, type_ids, cfg.max_query_len, cfg.doc_stride)
    return encode_examples(examples, tokenizer, max_length, type_ids)


def _task_model(pretrained: PretrainingModel, task: Task, cfg: FinetuneConfig, device: torch.device
                ) -> TaskModel | TokenTaggingModel:
    torch.manual_seed(cfg.seed)
    encoder = PretrainingModel(pretrained.cfg)
    encoder.load_state_dict(pretrained.state_dict())
    encoder.unpad = cfg.unpad
    if task.spec.span:
        return SpanModel(encoder).to(device).train()
    head = TokenTaggingModel if task.spec.tagging else TaskModel
    model = head(encoder, task.num_labels, cfg.dropout).to(device)
    return model.train()


def _optimizer(model: TaskModel, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return adamw([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                 lr=cfg.lr, eps=1e-6)


def _train_batches(enc: Encoded, cfg: FinetuneConfig, regression: bool):
    rng = np.random.default_rng(cfg.seed)
    while True:
        yield from batches(enc, cfg.batch_size, regression, rng.permutation(len(enc.ids)).tolist())


def finetune(pretrained: PretrainingModel, tokenizer: Tokenizer, task: Task, cfg: FinetuneConfig, *,
             warn: bool = True) -> FinetuneResult:
    """Fine-tune a copy of `pretrained` on `task`; the test score of the best dev checkpoint.
    `warn`: say which span-QA questions were cut to the query limit (`span_qa.truncation_warning`)."""
    device, t0 = pick_device(cfg.device), time.perf_counter()
    regression, metric = task.spec.regression, primary_metric(task)
    type_ids = pretrained.cfg.type_vocab_size > 1
    max_len = min(cfg.max_length, pretrained.cfg.max_position_embeddings)
    enc = {s: encode_split(task, ex, tokenizer, max_len, type_ids, cfg) for s, ex in task.splits.items()}
    if task.spec.span and warn:   # one line per split with questions cut short
        for split, e in enc.items():
            warn_truncated(task.name, split, e, cfg.max_query_len)
    if cfg.max_train_examples:
        enc["train"] = enc["train"].head(cfg.max_train_examples)
    model = _task_model(pretrained, task, cfg, device)
    optimizer = _optimizer(model, cfg)
    train = _train_batches(enc["train"], cfg, regression)
    best, best_step, best_state, curve, stale, step = math.nan, 0, None, [], 0, 0
    while step < cfg.max_steps:
        _step(model, optimizer, to_device(next(train), device), cfg, warmup_linear_decay(step / cfg.max_steps, cfg.warmup),
              device)
        step += 1
        if step % cfg.eval_interval and step != cfg.max_steps:
            continue
        value = _scored(task, model, enc["dev"], cfg, device)[metric].value
        curve.append((step, value))
        if best_state is None or _rank(value) > _rank(best):
            best, best_step, stale = value, step, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience and step >= cfg.max_steps // 2:
                break  # never in the first half: a plateau while the learning rate is high is common
    model.load_state_dict(best_state)
    if task.spec.span:
        return _span_result(task, model, enc["test"], cfg, device, (best, best_step, step, t0, curve))
    test = _scored(task, model, enc["test"], cfg, device)
    return FinetuneResult(task.name, metric, cfg.seed, test[metric], best, test, best_step, step,
                          time.perf_counter() - t0, curve)


def predictions_path(predictions_dir: str | Path, task: str, seed: int) -> Path:
    """Where a span task's test predictions go: DIR/TASK/finetune-seed-S/predictions.json."""
    return Path(predictions_dir) / task / f"finetune-seed-{seed}" / PREDICTIONS


def _span_result(task: Task, model: SpanModel, enc: SpanEncoded, cfg: FinetuneConfig, device: torch.device,
                 run: tuple) -> FinetuneResult:
    """The test split's EM and F1, every question's pair, and the predictions (written out
    in the official format when `cfg.predictions_dir` is set)."""
    best, best_step, step, t0, curve = run
    predictions = span_predictions(model, enc, cfg, device)
    scored = squad_scores(predictions, enc.examples)
    path = None
    if cfg.predictions_dir:
        path = str(write_predictions(predictions, predictions_path(cfg.predictions_dir, task.name, cfg.seed)))
    return FinetuneResult(task.name, PRIMARY_SPAN, cfg.seed, scored.scores[PRIMARY_SPAN], best, scored.scores,
                          best_step, step, time.perf_counter() - t0, curve, predictions, path,
                          {m: [round(v, 2) for v in vs] for m, vs in scored.per_question.items()}, scored.ids_key)


def _rank(value: float) -> float:
    """An undefined dev score (NaN) ranks below every defined one."""
    return -math.inf if math.isnan(value) else value


def _step(model: TaskModel, optimizer: torch.optim.Optimizer, batch: dict, cfg: FinetuneConfig, lr_factor: float,
          device: torch.device) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, cfg.precision):
        loss, _ = model(**batch)
    loss.backward()
    if cfg.clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor
    optimizer.step()


@dataclass
class SeedSummary:
    task: str
    metric: str
    mean: float                    # over the seeds whose score is defined (NaN if none is)
    se: float                      # standard error over those seeds
    n: int                         # test examples
    results: list[FinetuneResult]
    chance: float | None = None    # the test split's score of a model that learned nothing (metrics.chance_level)
    metrics: tuple[str, ...] = ()  # every metric reported (span QA: exact_match and f1); () = (metric,)
    chances: dict[str, float] = field(default_factory=dict)   # per reported metric

    @property
    def reported(self) -> tuple[str, ...]:
        return self.metrics or (self.metric,)

    def of(self, metric: str) -> SeedSummary:
        """The summary of one reported metric (its mean and se over seeds, its chance level)."""
        if metric == self.metric and not self.chances:
            return self
        results = [replace(r, metric=metric, test=r.test_all[metric]) for r in self.results]
        mean, se = mean_and_se([r.test.value for r in results])
        return SeedSummary(self.task, metric, mean, se, self.n, results, self.chances.get(metric, self.chance))

    @property
    def undefined(self) -> int:
        """Seeds whose test score is undefined (left out of the mean)."""
        return sum(not r.test.defined for r in self.results)

    @property
    def why_undefined(self) -> str:
        return next((r.test.note for r in self.results if not r.test.defined), "")

    def to_dict(self) -> dict:
        """JSON-safe: undefined scores are None, `undefined` counts those seeds and `why` says why."""
        first = self.results[0].test
        paths = [r.predictions_path for r in self.results if r.predictions_path]
        return {"task": self.task, "metric": self.metric, "mean": json_number(self.mean),
                "se": json_number(self.se), "n": self.n, "seeds": [r.seed for r in self.results],
                "values": [json_number(r.test.value) for r in self.results],
                "undefined": self.undefined, "why": self.why_undefined,
                "ci95_seed0": [json_number(first.low), json_number(first.high)],
                "best_steps": [r.best_step for r in self.results],
                "test_all": {k: [json_number(r.test_all[k].value) for r in self.results]
                             for k in self.results[0].test_all},
                "chance": self.chance, **({"predictions": paths} if paths else {})}

    def __str__(self) -> str:
        if len(self.reported) == 1:
            return self._text(4)
        paths = [r.predictions_path for r in self.results if r.predictions_path]   # span QA: EM and F1 on 0-100
        return "; ".join([self.of(m)._text(2) for m in self.reported] +
                         ([f"test predictions: {', '.join(paths)}"] if paths else []))

    def _text(self, places: int) -> str:
        k, seeds, first, p = self.undefined, len(self.results), self.results[0].test, places
        chance = f"; a model that learned nothing scores {self.chance:.{p}f}" if self.chance is not None else ""
        if k == seeds:
            return (f"{self.task} {self.metric} undefined on all {seeds} seed(s) ({self.why_undefined}; "
                    f"n={self.n}{chance})")
        over = f"{seeds} seeds" if not k else \
            f"the {seeds - k} of {seeds} seeds whose score is defined; {k} undefined ({self.why_undefined})"
        ci = f"{first.low:.{p}f}-{first.high:.{p}f}" if first.defined else "undefined"
        return (f"{self.task} {self.metric} {self.mean:.{p}f} ± {self.se:.{p}f} (mean ± se over {over}; n={self.n}, "
                f"seed-{self.results[0].seed} 95% CI {ci}{chance})")


def finetune_seeds(pretrained: PretrainingModel, tokenizer: Tokenizer, task: Task, cfg: FinetuneConfig,
                   seeds: int = 3) -> SeedSummary:
    results = [finetune(pretrained, tokenizer, task, cfg.replace(seed=cfg.seed + i), warn=i == 0)
               for i in range(seeds)]   # the same windows for every seed: their warnings once
    mean, se = mean_and_se([r.test.value for r in results])
    metrics = reported_metrics(task)
    chances = task_chances(task)
    return SeedSummary(task.name, results[0].metric, mean, se, results[0].test.n, results,
                       chances[results[0].metric], metrics if len(metrics) > 1 else (),
                       chances if len(metrics) > 1 else {})
