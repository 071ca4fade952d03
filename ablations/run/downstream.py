"""Downstream scores of a pretrained arm, for its results row: fine-tune it on each task and
record each score with its n, interval and chance level (the fields: `ablations.rows.TaskScore`;
`ablations.analysis.downstream` reads them)."""
from __future__ import annotations

import time
from typing import Any

from ablations.rows import Row
from core.data import Tokenizer
from core.finetune import FinetuneConfig, SeedSummary, Task, finetune_seeds, load_task
from core.finetune.metrics import json_number
from core.model import PretrainingModel


def load_tasks(names: list[str] | tuple[str, ...]) -> list[Task]:
    """Every task read and checked up front, so a missing file fails before pretraining."""
    return [load_task(n) for n in names]


def finetune_config(steps: int, seed: int = 0, device: str = "auto") -> FinetuneConfig:
    return FinetuneConfig(max_steps=steps, seed=seed, device=device)


def score_arm(model: PretrainingModel, tokenizer: Tokenizer, tasks: list[Task], cfg: FinetuneConfig,
              seeds: int = 1) -> dict[str, Any]:
    """The row fields for one pretrained arm (see the module docstring)."""
    row: dict[str, Any] = {}
    for task in tasks:
        summary = finetune_seeds(model, tokenizer, task, cfg, seeds)
        row.update(summary_fields(summary))
    return row


def summary_fields(s: SeedSummary) -> dict[str, Any]:
    """An undefined score is None (never 0); `_undefined` counts the seeds whose score was
    undefined and `_why` says why (`ablations.analysis.downstream` reads both)."""
    first, t = s.results[0].test, s.task
    fields = {f"downstream_{t}": json_number(s.mean), f"downstream_{t}_se": json_number(s.se),
              f"downstream_{t}_n": s.n, f"downstream_{t}_ci": [json_number(first.low), json_number(first.high)],
              f"downstream_{t}_metric": s.metric, f"downstream_{t}_seeds": s.to_dict(),
              f"downstream_{t}_chance": s.chance, f"downstream_{t}_undefined": s.undefined}
    if s.undefined:
        fields[f"downstream_{t}_why"] = s.why_undefined
    return fields


def _number(v: float | None) -> str:
    """A score to three places, or 'undefined' (never 0)."""
    return "undefined" if v is None else f"{v:.3f}"


def downstream_lines(row: Row) -> list[str]:
    """One console line per task (or the error), for the runner's log; the report judges them."""
    if row.downstream_error:
        return [f"[red]downstream failed[/red]: {row.downstream_error}"]
    return [f"{t} {s.metric} {_number(s.score)} (n={s.n}, chance {_number(s.chance)})"
            for t, s in row.downstream.items()]


def score_or_error(model: PretrainingModel, tokenizer_path: str, tasks: tuple[str, ...], steps: int, seeds: int,
                   device: str) -> dict[str, Any]:
    """The downstream row fields of a pretrained arm; a failure is `downstream_error`, since
    the pretrained arm is a result even if fine-tuning fails (its weights are kept)."""
    try:
        return score_arm(model, Tokenizer(tokenizer_path), load_tasks(tasks), finetune_config(steps, device=device),
                         seeds)
    except Exception as err:  # noqa: BLE001
        return {"downstream_error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]} (the weights are kept: "
                                    f"retry with python -m ablations finetune)"}


def missing_tasks(row: Row, tasks: tuple[str, ...]) -> list[str]:
    """The tasks of this run (--downstream) that a finished row has no score for (all of
    them after a failed downstream step)."""
    if row.downstream_error:
        return list(tasks)
    return [t.name for t in load_tasks(tasks) if t.name not in row.downstream or not row.downstream[t.name].scored]


def rescored(row: Row, weights_dir, tasks: tuple[str, ...], steps: int, seeds: int, device: str, log) -> Row:
    """A finished row with its downstream step done again from its kept weights (in
    `weights_dir`): the pretraining is never redone for it."""
    from core.interop import load_arm

    loaded = load_arm(weights_dir)
    fields = score_or_error(loaded.model, loaded.tokenizer.path, tasks, steps, seeds, device)
    scored = row.without_downstream().merged({**fields, "rescored": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for line in downstream_lines(scored):
        log(f"  {line}")
    return scored
