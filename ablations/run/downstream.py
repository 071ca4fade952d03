"""Downstream scores of a pretrained arm, for its results row: fine-tune it on each task and
record each score with its n, interval and chance level (the fields: `ablations.rows.TaskScore`;
`ablations.analysis.downstream` reads them).

A span-QA task (korquad) reports two scores, exact match and F1 (0-100): each is its own
`downstream_TASK_METRIC` group, naming its task, with the first seed's score per test
question (for paired comparisons) and its test predictions, written in the official format
under the arm's kept weights (`arms/ARM/seed-K/downstream/TASK/finetune-seed-S/predictions.json`)
and recorded relative to the run directory."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ablations.rows import Row
from core.data import Tokenizer
from core.finetune import FinetuneConfig, SeedSummary, Task, finetune_seeds, load_task
from core.finetune.loop import reported_metrics
from core.finetune.metrics import json_number
from core.model import PretrainingModel


def load_tasks(names: list[str] | tuple[str, ...]) -> list[Task]:
    """Every task read and checked up front, so a missing file fails before pretraining."""
    return [load_task(n) for n in names]


def finetune_config(steps: int, seed: int = 0, device: str = "auto") -> FinetuneConfig:
    return FinetuneConfig(max_steps=steps, seed=seed, device=device)


def score_arm(model: PretrainingModel, tokenizer: Tokenizer, tasks: list[Task], cfg: FinetuneConfig,
              seeds: int = 1, root: Path | None = None) -> dict[str, Any]:
    """The row fields for one pretrained arm (see the module docstring); prediction files are
    recorded relative to `root` (the run directory)."""
    row: dict[str, Any] = {}
    for task in tasks:
        summary = finetune_seeds(model, tokenizer, task, cfg, seeds)
        row.update(summary_fields(summary, root))
    return row


def score_keys(task: str, metrics: tuple[str, ...]) -> list[str]:
    """The `row.downstream` keys of a task's scores: the task, or TASK_METRIC for each of several."""
    return [task] if len(metrics) == 1 else [f"{task}_{m}" for m in metrics]


def _relative(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return path


def summary_fields(s: SeedSummary, root: Path | None = None) -> dict[str, Any]:
    """An undefined score is None (never 0); `_undefined` counts the seeds whose score was
    undefined and `_why` says why (`ablations.analysis.downstream` reads both). A task with
    several scores (span QA) gives a group per score (see the module docstring)."""
    if len(s.reported) == 1:
        return _score_fields(s, s.task)
    fields: dict[str, Any] = {}
    first = s.results[0]
    for metric, key in zip(s.reported, score_keys(s.task, s.reported)):
        group = _score_fields(s.of(metric), key)
        group[f"downstream_{key}_task"] = s.task
        group[f"downstream_{key}_scale"] = 100
        paths = [_relative(r.predictions_path, root) for r in s.results if r.predictions_path]
        if paths:
            group[f"downstream_{key}_predictions"] = paths
        if first.per_question is not None:
            group[f"downstream_{key}_examples"] = {"ids": first.ids_key, "values": first.per_question[metric]}
        fields.update(group)
    return fields


def _score_fields(s: SeedSummary, t: str) -> dict[str, Any]:
    first = s.results[0].test
    fields = {f"downstream_{t}": json_number(s.mean), f"downstream_{t}_se": json_number(s.se),
              f"downstream_{t}_n": s.n, f"downstream_{t}_ci": [json_number(first.low), json_number(first.high)],
              f"downstream_{t}_metric": s.metric, f"downstream_{t}_seeds": s.to_dict(),
              f"downstream_{t}_chance": s.chance, f"downstream_{t}_undefined": s.undefined}
    if s.undefined:
        fields[f"downstream_{t}_why"] = s.why_undefined
    return fields


def _number(v: float | None, places: int = 3) -> str:
    """A score to three places (two for EM and F1 on 0-100), or 'undefined' (never 0)."""
    return "undefined" if v is None else f"{v:.{places}f}"


def downstream_lines(row: Row) -> list[str]:
    """One console line per task (or the error), for the runner's log; the report judges them."""
    if row.downstream_error:
        return [f"[red]downstream failed[/red]: {row.downstream_error}"]
    lines = []
    for s in row.downstream.values():   # a span task's label names its metric already: "korquad f1"
        name, p = (s.label, 2) if s.of_task else (f"{s.task} {s.metric}", 3)
        lines.append(f"{name} {_number(s.score, p)} (n={s.n}, chance {_number(s.chance, p)})")
    return lines


def score_or_error(model: PretrainingModel, tokenizer_path: str, tasks: tuple[str, ...], steps: int, seeds: int,
                   device: str, arm_dir: Path | None = None, root: Path | None = None) -> dict[str, Any]:
    """The downstream row fields of a pretrained arm; a failure is `downstream_error`, since
    the pretrained arm is a result even if fine-tuning fails (its weights are kept). Span
    tasks write their test predictions under `arm_dir`/downstream, recorded relative to
    `root` (the run directory)."""
    try:
        cfg = finetune_config(steps, device=device)
        if arm_dir is not None:
            cfg = cfg.replace(predictions_dir=str(Path(arm_dir) / "downstream"))
        return score_arm(model, Tokenizer(tokenizer_path), load_tasks(tasks), cfg, seeds, root)
    except Exception as err:  # noqa: BLE001
        return {"downstream_error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]} (the weights are kept: "
                                    f"retry with python -m ablations finetune)"}


def missing_tasks(row: Row, tasks: tuple[str, ...]) -> list[str]:
    """The tasks of this run (--downstream) that a finished row has no score for (all of
    them after a failed downstream step)."""
    if row.downstream_error:
        return list(tasks)
    return [t.name for t in load_tasks(tasks)
            if any(k not in row.downstream or not row.downstream[k].scored
                   for k in score_keys(t.name, reported_metrics(t)))]


def rescored(row: Row, weights_dir, tasks: tuple[str, ...], steps: int, seeds: int, device: str, log) -> Row:
    """A finished row with its downstream step done again from its kept weights (in
    `weights_dir`): the pretraining is never redone for it."""
    from core.interop import load_arm

    loaded = load_arm(weights_dir)
    root = Path(weights_dir)
    for _ in Path(row.weights_dir or "").parts:   # the run directory: weights_dir less the row's relative path
        root = root.parent
    fields = score_or_error(loaded.model, loaded.tokenizer.path, tasks, steps, seeds, device, Path(weights_dir), root)
    scored = row.without_downstream().merged({**fields, "rescored": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for line in downstream_lines(scored):
        log(f"  {line}")
    return scored
