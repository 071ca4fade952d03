"""Downstream scores of pretrained arms: fine-tune on each task, record the scores in the
results row (each with n and an interval), and report them beside pretraining loss and
cost, with a verdict on whether a component that saves memory or parameters costs
downstream quality beyond noise.

Row fields per task T: `downstream_T` (mean over fine-tuning seeds of the primary metric:
accuracy, or Spearman for regression), `downstream_T_se` (standard error over seeds),
`downstream_T_n` (test examples), `downstream_T_ci` (95% interval of the first seed's
test score), `downstream_T_seeds` (every seed and metric) and `downstream_T_chance` (what a
model that learned nothing scores on the test split: the majority class's share, or 0 for
a correlation; a score whose interval reaches it is marked "at chance").
"""
from __future__ import annotations

import math
from typing import Any

from ablations.results import latest_by
from core.data import Tokenizer
from core.finetune import FinetuneConfig, SeedSummary, Task, finetune_seeds, load_task
from core.model import PretrainingModel

Z95 = 1.959963984540054


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
    first = s.results[0].test
    return {f"downstream_{s.task}": s.mean, f"downstream_{s.task}_se": s.se, f"downstream_{s.task}_n": s.n,
            f"downstream_{s.task}_ci": [first.low, first.high], f"downstream_{s.task}_metric": s.metric,
            f"downstream_{s.task}_seeds": s.to_dict(), f"downstream_{s.task}_chance": s.chance}


def tasks_in(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k.startswith("downstream_") and k.endswith("_metric"):
                seen[k[len("downstream_"):-len("_metric")]] = None
    return list(seen)


def downstream_lines(row: dict) -> list[str]:
    """One console line per task (or the error), for the runner's log."""
    if row.get("downstream_error"):
        return [f"[red]downstream failed[/red]: {row['downstream_error']}"]
    return [f"{t} {row[f'downstream_{t}_metric']} {fmt_score(row, t)}" for t in tasks_in([row])]


def _total_se(row: dict, task: str) -> float | None:
    """Seed noise and test-set sampling noise together (the interval's half-width / 1.96)."""
    ci, se = row.get(f"downstream_{task}_ci"), row.get(f"downstream_{task}_se")
    if ci is None or se is None:
        return None
    return math.sqrt(se ** 2 + ((ci[1] - ci[0]) / (2 * Z95)) ** 2)


def at_chance(row: dict, task: str) -> bool:
    """The first seed's 95% interval reaches what a model that learned nothing scores (the
    majority class's share, or no correlation): the score says nothing about the encoder."""
    chance, ci = row.get(f"downstream_{task}_chance"), row.get(f"downstream_{task}_ci")
    return chance is not None and ci is not None and ci[0] <= chance


def fmt_score(row: dict, task: str) -> str:
    v = row.get(f"downstream_{task}")
    if v is None:
        return "–"
    ci = row.get(f"downstream_{task}_ci") or [math.nan, math.nan]
    text = (f"{v:.3f} ± {row.get(f'downstream_{task}_se', 0):.3f} (n={row.get(f'downstream_{task}_n')}, "
            f"CI {ci[0]:.3f}–{ci[1]:.3f})")
    return text + (f", at chance ({row[f'downstream_{task}_chance']:.3f})" if at_chance(row, task) else "")


def compare_downstream(row: dict, ref: dict, task: str) -> str | None:
    a, b = row.get(f"downstream_{task}"), ref.get(f"downstream_{task}")
    sa, sb = _total_se(row, task), _total_se(ref, task)
    if a is None or b is None or sa is None or sb is None:
        return None
    d, noise = a - b, 2 * math.sqrt(sa ** 2 + sb ** 2)
    metric = row.get(f"downstream_{task}_metric", "score")
    if abs(d) <= noise:
        return f"{task} {metric} {d:+.3f}: within noise (±{noise:.3f})"
    if at_chance(row, task) and at_chance(ref, task):
        return f"{task} {metric} {d:+.3f}: inconclusive (both at chance)"
    return f"{task} {metric} {d:+.3f}: {'better' if d > 0 else 'costs downstream quality'} beyond noise (±{noise:.3f})"


def _savings(row: dict, ref: dict) -> str:
    parts = []
    for key, label in (("params_unique", "parameters"), ("peak_mem_bytes", "peak memory")):
        if row.get(key) and ref.get(key):
            r = row[key] / ref[key]
            if r < 0.95:
                parts.append(f"{label} ×{r:.2f}")
    return ", ".join(parts)


def downstream_markdown(rows: list[dict]) -> str:
    """The report's downstream section ("" when no arm was fine-tuned)."""
    latest = latest_by(rows, "arm")  # a ladder: its largest rung
    tasks = tasks_in(list(latest.values()))
    if not tasks:
        return ""
    headers = ["arm", "MLM loss", "params", "peak mem"] + [
        f"{t} ({next(r[f'downstream_{t}_metric'] for r in latest.values() if r.get(f'downstream_{t}_metric'))})"
        for t in tasks]
    lines = ["## Downstream (fine-tuned; test score of the best dev checkpoint)", "",
             "Mean ± standard error over fine-tuning seeds; n test examples; 95% interval of the first seed's "
             "score (Wilson for accuracy, Fisher z for correlations).", "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in latest.values():
        cells = [r["arm"], "–" if r.get("eval_mlm_loss") is None else f"{r['eval_mlm_loss']:.3f}",
                 "–" if not r.get("params_unique") else f"{r['params_unique'] / 1e6:.2f}M",
                 "–" if not r.get("peak_mem_bytes") else f"{r['peak_mem_bytes'] / 2**20:,.0f} MiB"]
        lines.append("| " + " | ".join(cells + [fmt_score(r, t) for t in tasks]) + " |")
    verdicts = []
    for r in latest.values():
        ref = latest.get(r.get("compare_to") or "")
        found = [c for t in tasks if ref is not None and (c := compare_downstream(r, ref, t))]
        if found:
            saves = _savings(r, ref)
            what = r.get("component") or r["arm"]
            verdicts.append(f"- **{what}** ({r['arm']} vs {ref['arm']}){': saves ' + saves if saves else ''}; "
                            + "; ".join(found) + ".")
    stuck = [f"{r['arm']} ({t})" for r in latest.values() for t in tasks if at_chance(r, t)]
    if stuck:
        lines += ["", f"At chance (the score's interval reaches what a model that learned nothing scores: the "
                      f"majority class's share, or no correlation): {', '.join(stuck)}. Such a score says nothing "
                      "about the pretrained encoder."]
    if verdicts:
        lines += ["", "Verdicts (a difference counts when it exceeds twice the combined seed and test-set noise):",
                  "", *verdicts]
    return "\n".join(lines) + "\n"
