"""The rows of a run directory, typed: a `Row` per finished (arm, seed), or per ladder rung, in
results.jsonl and a `BenchRow` per measured (variant, length) in bench.jsonl
(`ablations.rundir` reads and writes them; docs/ablations.md#the-row-schema describes every field).

A row is one flat JSON object whose keys are the attribute names below (and the columns of
results.csv), so that scripts reading results.jsonl as JSON keep working. Nested values are
typed when read: the held-out curve (`EvalPoint`), how training began (`Resume`), the
learning-rate search (`LrSearch`) and the downstream scores, one `TaskScore` per task
(written flat, as `downstream_TASK`, `downstream_TASK_se`, ...). Nested values are written
back as they were read; what the typed view normalises (an undefined score written as NaN
by older versions reads as None) is normalised for reading only.

Versions: this version writes `row_version` 2; a row without it is version 1 (every row
written before the schema) and reads the same way, a field it lacks taking its default. A
key this version does not know (a later version's field, `downstream_TASK_x` of an
unknown suffix) is kept in `extra`, and every row keeps its keys in the order it had them
(`json_keys`), so a row read and written again is the same JSON object, `row_version` apart.

A row is frozen: the run stage adds fields with `merged` (dict.update's rules: a key
it had keeps its place, a new key goes last), never with `dataclasses.replace`, which
would not add the key to `json_keys`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, Self

ROW_VERSION = 2   # what this version writes; rows without `row_version` are version 1


class RowError(ValueError):
    """A JSON value that cannot be read as a row (the reader skips it with a warning)."""


def _defined(v: Any) -> Any:
    """A number as rows hold it; None for an undefined one (None, or NaN in older rows)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


# -- nested values: typed for reading, written back as they were read -------------------------------
@dataclass(frozen=True)
class _Nested:
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class EvalPoint(_Nested):
    """One held-out evaluation during training (an entry of a row's `evals`): where training
    stood, and its scores. Curve points (`curve`) score the first held-out examples cheaply
    and keep each one's MLM loss sum (`mlm_example_losses`); the others are full evaluations
    and keep every summary score of the final one (in `raw`)."""
    step: int | None = None
    tokens: float | None = None
    seconds: float | None = None
    flops: float | None = None          # training FLOPs so far (rows before FLOPs were counted: none)
    curve: bool = False
    eval_mlm_loss: float | None = None
    eval_mlm_acc: float | None = None
    eval_mlm_unigram_xent: float | None = None
    mlm_example_losses: Sequence[float] | None = None
    mlm_example_tokens: Sequence[int] | None = None   # older rows: the final evaluation's counts stand in

    @classmethod
    def from_json(cls, data: Any) -> EvalPoint:
        if not isinstance(data, Mapping):
            raise RowError(f"an evals entry is a JSON {type(data).__name__}, not an object")
        return cls(data, **{f: data.get(f) for f in _names(cls) if f in data and f != "curve"},
                   curve=bool(data.get("curve")))


@dataclass(frozen=True)
class Resume(_Nested):
    """How a unit's training began: fresh, resumed, restarted (`reason` says why), extended or
    branched (a ladder rung), from `from_step`."""
    kind: str | None = None
    from_step: int | None = None
    reason: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Resume | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise RowError(f"resume is a JSON {type(data).__name__}, not an object")
        return cls(data, data.get("kind"), data.get("from_step"), data.get("reason"))


@dataclass(frozen=True)
class LrSearch(_Nested):
    """`--lr-search`'s record for an arm: the held-out MLM loss at each rate tried (rates as
    text, 6 significant digits; None where the point did not finish ok), the rate chosen,
    whether it lies at the grid's edge, and what the search cost."""
    chosen: float | None = None
    losses: Mapping[str, float | None] = field(default_factory=dict)
    edge: bool = False
    flops: float | None = None
    seconds: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> LrSearch | None:
        if data is None:
            return None
        if not isinstance(data, Mapping) or not isinstance(data.get("losses", {}), Mapping):
            raise RowError("lr_search is not an object with a losses object")
        return cls(data, data.get("chosen"), data.get("losses") or {}, bool(data.get("edge")), data.get("flops"),
                   data.get("seconds"))


# a task's fields, as suffixes of `downstream_TASK`
TASK_SUFFIXES = ("", "_se", "_n", "_ci", "_metric", "_seeds", "_chance", "_undefined", "_why", "_task", "_scale",
                 "_predictions", "_examples")


@dataclass(frozen=True)
class TaskScore(_Nested):
    """One downstream task's fine-tuned test score (`downstream_TASK` and its companions; `raw`:
    suffix -> value as written). Undefined values (a correlation of constant predictions)
    are None, never 0.

    A task that reports several scores (span QA: exact match and F1) has one TaskScore per
    score, keyed `TASK_METRIC` (`downstream_korquad_exact_match`, `downstream_korquad_f1`),
    each naming its task (`_task`), its scale (`_scale`: 100 for scores on 0-100, as
    KorQuAD's evaluator prints them), the files of its test predictions (`_predictions`,
    relative to the run directory, one per fine-tuning seed) and the first seed's score of
    every test question (`_examples`: {"ids": a fingerprint of the question ids in order,
    "values": [...]}), which pairs two arms question by question."""
    task: str = ""
    score: float | None = None          # downstream_TASK: mean over the fine-tuning seeds' defined scores
    se: float | None = None             # _se: standard error over those seeds
    n: int | None = None                # _n: test examples
    ci: tuple[float | None, float | None] = (None, None)   # _ci: 95% interval of the first seed's score
    metric: str | None = None           # _metric: accuracy, or spearman for regression
    seed_values: tuple[float | None, ...] = ()   # _seeds: every fine-tuning seed's score (and more, in raw)
    chance: float | None = None         # _chance: what a model that learned nothing scores
    undefined: int = 0                  # _undefined: seeds whose score was undefined
    why: str | None = None              # _why: why they were
    scored: bool = False                # whether the row has the score itself (downstream_TASK)
    of_task: str | None = None          # _task: the fine-tuned task, when it reports several scores
    scale: float = 1.0                  # _scale: 1 (a share or a correlation) or 100 (EM and F1, 0-100)
    predictions: tuple[str, ...] = ()   # _predictions: the test predictions' files, per fine-tuning seed
    examples: Mapping[str, Any] | None = None   # _examples: {"ids": fingerprint, "values": per question}

    @property
    def label(self) -> str:
        """What the report calls it: the task, and the metric when the task has several."""
        return f"{self.of_task} {self.metric}" if self.of_task else self.task

    @property
    def per_example(self) -> tuple[str, Sequence[float]] | None:
        """(ids fingerprint, the first seed's score per test question), when recorded."""
        e = self.examples
        if not isinstance(e, Mapping) or not isinstance(e.get("ids"), str) or not isinstance(e.get("values"), list):
            return None
        return e["ids"], e["values"]

    @classmethod
    def from_parts(cls, task: str, parts: Mapping[str, Any]) -> TaskScore:
        ci = parts.get("_ci") or (None, None)
        seeds = parts.get("_seeds") or {}
        if not isinstance(ci, Sequence) or len(ci) != 2 or not isinstance(seeds, Mapping):
            raise RowError(f"downstream_{task}_ci or _seeds has the wrong shape")
        return cls(parts, task, _defined(parts.get("")), _defined(parts.get("_se")), parts.get("_n"),
                   (_defined(ci[0]), _defined(ci[1])), parts.get("_metric"),
                   tuple(seeds.get("values") or ()), _defined(parts.get("_chance")), parts.get("_undefined") or 0,
                   parts.get("_why"), "" in parts, parts.get("_task"), parts.get("_scale") or 1.0,
                   tuple(parts.get("_predictions") or ()), parts.get("_examples"))

    def to_json(self) -> dict[str, Any]:
        return {f"downstream_{self.task}{suffix}": v for suffix, v in self.raw.items()}


@dataclass(frozen=True)
class Accuracy:
    """A head's held-out accuracy and what it is judged with (`Row.accuracy`)."""
    acc: float | None
    n: int | None                 # scored examples (MLM: masked tokens)
    correct: str | None = None    # per example, "1" right and "0" wrong (sentence heads)
    majority: float | None = None  # the share of always answering the commonest class (token)


class Metric(StrEnum):
    """The row fields that arms are compared on by name: the verdicts' ratios and differences,
    and the expected directions of spec.json (whose `metric` is one of these names)."""
    MLM_LOSS = "eval_mlm_loss"
    SENTENCE_LOSS = "eval_sentence_loss"
    MLM_ACC = "eval_mlm_acc"
    NSP_ACC = "eval_nsp_acc"
    SOP_ACC = "eval_sop_acc"
    PARAMS_UNIQUE = "params_unique"
    PARAMS_TOTAL = "params_total"
    TOKENS_PER_S = "tokens_per_s"
    PEAK_MEM = "peak_mem_bytes"
    SAVED = "saved_bytes"
    SAVED_LONG = "saved_bytes_long"
    OPTIMIZER_STATE = "optimizer_state_bytes"
    WALL_S = "wall_s"

    @property
    def task(self) -> str | None:
        """The head an accuracy belongs to (mlm, nsp or sop); None for other metrics."""
        return self.value.removeprefix("eval_").removesuffix("_acc") if self.value.endswith("_acc") else None


class _PerExample(tuple):
    """The fields named, and every task's `downstream_TASK_examples` (a value per test question)."""

    def __contains__(self, key: object) -> bool:
        return tuple.__contains__(self, key) or (isinstance(key, str) and key.startswith("downstream_")
                                                 and key.endswith("_examples"))


# fields that hold one value per held-out example (results.csv leaves them to results.jsonl)
PER_EXAMPLE = _PerExample(("eval_mlm_example_loss", "eval_mlm_example_tokens", "eval_nsp_correct", "eval_sop_correct"))
ACCURACY = {"mlm": Metric.MLM_ACC, "nsp": Metric.NSP_ACC, "sop": Metric.SOP_ACC}   # head -> its accuracy


# -- the flat rows ------------------------------------------------------------------------------------
class _Flat:
    """What a results row and a bench row share: read from and written to one flat JSON
    object, keys in the order read, unknown keys kept."""
    NESTED: ClassVar[dict[str, Any]] = {}     # field -> its reader (JSON value -> typed value)
    row_version: int
    extra: Mapping[str, Any]
    json_keys: tuple[str, ...] | None

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        return tuple(f for f in _names(cls) if f not in ("extra", "json_keys", "downstream"))

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """The row of a JSON object (`RowError` when it has the wrong shape)."""
        if not isinstance(data, Mapping):
            raise RowError(f"a JSON {type(data).__name__}, not a row (a JSON object)")
        known, values, extra = set(cls._fields()), {}, {}
        tasks, claimed = cls._tasks(data)
        for k, v in data.items():
            if k in known:
                values[k] = cls.NESTED[k](v) if k in cls.NESTED else v
            elif k not in claimed:
                extra[k] = v
        if tasks:
            values["downstream"] = tasks
        return cls(**values, extra=extra, json_keys=tuple(data))

    @classmethod
    def _tasks(cls, data: Mapping[str, Any]) -> tuple[dict[str, TaskScore], set[str]]:
        return {}, set()

    def _known_json(self) -> dict[str, Any]:
        """Every known field as JSON, in the schema's order."""
        out = {}
        for name in self._fields():
            v = getattr(self, name)
            out[name] = v.to_json() if isinstance(v, _Nested) else \
                [e.to_json() for e in v] if name == "evals" else v
        return out

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object: the keys it was read with, in their order (a row made in code,
        without `json_keys`: every field in the schema's order, then `extra`)."""
        known = self._known_json()
        if self.json_keys is None:
            return {**known, **self.extra}
        return {k: known[k] if k in known else self.extra[k] for k in self.json_keys}

    def merged(self, fields: Mapping[str, Any]) -> Self:
        """This row with `fields` (flat JSON keys) set, as dict.update would."""
        return type(self).from_json({**self.to_json(), **fields})

    def stamped(self) -> Self:
        """As this version writes it: `row_version` first, this version's (a row of a later
        version, copied as it was read with the keys this one does not know, keeps its own)."""
        version = max(self.row_version, ROW_VERSION)
        if self.json_keys is not None and self.json_keys[:1] == ("row_version",) and self.row_version == version:
            return self
        rest = {k: v for k, v in self.to_json().items() if k != "row_version"}
        return type(self).from_json({"row_version": version, **rest})


def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "raw")


def _evals(v: Any) -> tuple[EvalPoint, ...]:
    if v is None:
        return ()
    if not isinstance(v, list | tuple):
        raise RowError(f"evals is a JSON {type(v).__name__}, not a list")
    return tuple(EvalPoint.from_json(e) for e in v)


def _mapping(name: str):
    def read(v: Any) -> Mapping[str, Any]:
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise RowError(f"{name} is a JSON {type(v).__name__}, not an object")
        return v
    return read


@dataclass(frozen=True)
class Row(_Flat):
    """A results row: one finished (arm, seed), or one rung of its ladder. Fields are grouped
    as in docs/ablations.md#the-row-schema; None is "not recorded" (older rows) or "not applicable"."""
    row_version: int = 1
    # -- what ran ------------------------------------------------------------------------------
    ablation: str | None = None
    arm: str = ""
    seed: int = 0
    description: str | None = None
    component: str | None = None
    compare_to: str | None = None        # the arm it is compared with
    variant: str | None = None           # the ablation's base variant
    overrides: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)   # every model/data/train field, dotted
    key: str | None = None               # the configuration's key: arms with one key are trained once
    same_as: str | None = None           # trained once for this arm and that one (its twin)
    corpus: str | None = None
    device: str | None = None
    workers: int | None = None
    world_size: int | None = None
    precision: str | None = None
    timestamp: str | None = None
    reinstated: bool = False             # appended again as the result (a later row had replaced it)
    rescored: str | None = None          # when its downstream step was redone from the kept weights
    # -- how it ended ----------------------------------------------------------------------------
    status: str | None = None            # ok | oom | nan | error
    error: str | None = None
    failed_step: str | None = None       # train | final evaluation | weights | downstream | measurement
    stopped_by: str | None = None        # the budget that ended training: steps, tokens, flops or seconds
    budget_kind: str | None = None       # what the arms are matched on
    resume: Resume | None = None
    warm_start: str | None = None
    wall_s_total: float | None = None    # every step of the unit, measurement included
    weights_dir: str | None = None       # its kept final weights, relative to the run directory
    # -- training --------------------------------------------------------------------------------
    tokens_seen: int | None = None
    steps: int | None = None
    steps_trained: int | None = None     # in this session (0: resumed a finished checkpoint)
    wall_s: float | None = None
    compile_seconds: float | None = None   # compiling attention kernels, kept out of wall_s
    local_kernel: str | None = None      # the kernel the local (sliding-window) layers ran: banded, flex, dense
    attention_kernel: str | None = None  # the kernels a sparse attention ran, most calls first ("gather+flex")
    attention_paths: Mapping[str, int] | None = None   # its paths, by calls
    optimizer_state_bytes: int | None = None   # what the optimizer keeps (its moments)
    optimizer_groups: Mapping[str, Mapping[str, Any]] | None = None   # group -> params, tensors, lr, weight_decay
    train_tokens_per_s: float | None = None
    train_flops: float | None = None     # measured training FLOPs (older rows: none)
    flops_per_step: float | None = None
    flops_per_token_measured: float | None = None
    flops_per_token_analytic: float | None = None
    timed_steps: int | None = None
    train_loss: Sequence[Sequence[float]] = ()        # [tokens, loss, MLM loss, sentence loss] points
    train_loss_time: Sequence[Sequence[float]] = ()   # the same against seconds
    evals: tuple[EvalPoint, ...] = ()
    lr_source: str | None = None
    lr_search: LrSearch | None = None
    eval_set: str | None = None          # own | base: whose held-out set scored it
    # -- parameters ------------------------------------------------------------------------------
    params_unique: int | None = None
    params_total: int | None = None
    params_embedding: int | None = None
    params_encoder_unique: int | None = None
    # -- held-out scores (the final evaluation) ----------------------------------------------------
    eval_mlm_loss: float | None = None
    eval_mlm_acc: float | None = None
    eval_mlm_ppl: float | None = None
    eval_mlm_loss_se: float | None = None
    eval_mlm_tokens: int | None = None
    eval_mlm_examples: int | None = None
    eval_mlm_example_loss: Sequence[float] | None = None
    eval_mlm_example_tokens: Sequence[int] | None = None
    eval_mlm_majority_acc: float | None = None
    eval_mlm_unigram_entropy: float | None = None
    eval_mlm_unigram_xent: float | None = None
    eval_mlm_unigram_gap: float | None = None
    eval_mlm_unigram_gap_se: float | None = None
    eval_sentence_loss: float | None = None
    eval_sentence_acc: float | None = None
    eval_nsp_acc: float | None = None
    eval_nsp_n: int | None = None
    eval_nsp_majority: float | None = None
    eval_nsp_correct: str | None = None
    eval_sop_acc: float | None = None
    eval_sop_n: int | None = None
    eval_sop_majority: float | None = None
    eval_sop_correct: str | None = None
    # -- measured beside training --------------------------------------------------------------------
    tokens_per_s: float | None = None
    tokens_per_s_min: float | None = None
    tokens_per_s_max: float | None = None
    infer_tokens_per_s: float | None = None
    peak_mem_bytes: float | None = None
    memory_method: str | None = None
    saved_bytes: float | None = None
    saved_bytes_long: float | None = None
    long_seq_len: int | None = None
    flops_per_token: float | None = None
    attention_flops_per_token: float | None = None
    flops_label: str | None = None
    utilisation: float | None = None
    # -- a ladder's rung (--ladder K) -------------------------------------------------------------
    ladder: int | None = None            # K
    rung: int | None = None              # 0-based; K - 1 is the (arm, seed)'s result
    rung_budget: float | None = None
    rung_budget_unit: str | None = None
    ladder_ratio: float | None = None
    branch_step: int | None = None
    branch_tokens: int | None = None
    # -- downstream (--downstream) -------------------------------------------------------------------
    downstream: Mapping[str, TaskScore] = field(default_factory=dict)   # task -> its score
    downstream_error: str | None = None
    # -- kept for the round trip -----------------------------------------------------------------------
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    json_keys: tuple[str, ...] | None = field(default=None, repr=False)

    NESTED: ClassVar[dict[str, Any]] = {"evals": _evals, "resume": Resume.from_json, "lr_search": LrSearch.from_json,
                                        "config": _mapping("config"), "overrides": _mapping("overrides")}

    @classmethod
    def _tasks(cls, data: Mapping[str, Any]) -> tuple[dict[str, TaskScore], set[str]]:
        """The downstream tasks (those with `downstream_TASK_metric`, in that key's order) and the keys they claim."""
        tasks, claimed = {}, set()
        for k in data:
            if k.startswith("downstream_") and k.endswith("_metric"):
                task = k[len("downstream_"):-len("_metric")]
                parts = {s: data[f"downstream_{task}{s}"] for s in TASK_SUFFIXES if f"downstream_{task}{s}" in data}
                tasks[task] = TaskScore.from_parts(task, parts)
                claimed |= {f"downstream_{task}{s}" for s in parts}
        return tasks, claimed

    def _known_json(self) -> dict[str, Any]:
        out = super()._known_json()
        for score in self.downstream.values():
            out.update(score.to_json())
        return out

    # -- reading --------------------------------------------------------------------------------------
    @property
    def is_lower_rung(self) -> bool:
        """A ladder's rung below its largest: a budget point, not the (arm, seed)'s result."""
        return self.rung is not None and self.ladder is not None and self.rung < self.ladder - 1

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def value(self, metric: Metric | str) -> Any:
        """The field a metric names (`Metric`: its value is the field's name)."""
        return getattr(self, Metric(metric).value)

    def accuracy(self, task: str) -> Accuracy:
        """The accuracy of the MLM head ("mlm") or of a sentence head ("nsp", "sop")."""
        if task == "mlm":
            return Accuracy(self.eval_mlm_acc, self.eval_mlm_tokens, None, self.eval_mlm_majority_acc)
        head = {"nsp": (self.eval_nsp_acc, self.eval_nsp_n, self.eval_nsp_correct, self.eval_nsp_majority),
                "sop": (self.eval_sop_acc, self.eval_sop_n, self.eval_sop_correct, self.eval_sop_majority)}
        if task not in head:
            raise ValueError(f"unknown head {task!r}; choose from mlm, nsp, sop")
        return Accuracy(*head[task])

    def without_downstream(self) -> Row:
        """This row without its downstream scores (and downstream_error), to be scored again."""
        return Row.from_json({k: v for k, v in self.to_json().items() if not k.startswith("downstream_")})


@dataclass(frozen=True)
class BenchRow(_Flat):
    """A bench row: memory and speed of one variant at one sequence length, without training."""
    row_version: int = 1
    ablation: str | None = None
    variant: str | None = None
    size: str | None = None
    seq_len: int | None = None
    batch_size: int | None = None        # adjusted to a constant number of tokens per batch
    mode: str | None = None              # memory | speed | both
    device: str | None = None
    status: str | None = None            # ok | oom | error
    error: str | None = None
    skipped: bool = False                # out of memory at a shorter length already: not measured
    tokens_per_s: float | None = None
    infer_tokens_per_s: float | None = None
    peak_mem_bytes: float | None = None
    saved_bytes: float | None = None
    step_s_median: float | None = None
    utilisation: float | None = None
    flops_label: str | None = None
    memory_method: str | None = None
    params_unique: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    json_keys: tuple[str, ...] | None = field(default=None, repr=False)
