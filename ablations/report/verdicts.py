"""The verdicts in words: differences, speed ratios, an arm against its comparison arm and the
papers' expected directions, from the numbers and enums of `ablations.analysis.verdicts`."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ablations.analysis.verdicts import (
    ArmStats,
    Difference,
    Judgement,
    Missing,
    Outcome,
    compare,
    judge_expectation,
)
from ablations.rows import Metric

MARKS = {Outcome.REPRODUCED: "✅", Outcome.CONTRADICTED: "❌", Outcome.INCONCLUSIVE: "➖", Outcome.NOT_MEASURED: "·"}


def describe(d: Difference, label: str, points: bool = False) -> str:
    """'MLM loss +0.031: within noise (±0.044)' or 'MLM loss −0.120 ± 0.020 (lower)'."""
    scale, unit = (100, " points") if points else (1, "")
    real, noise = d.verdict
    text = f"{label} {scale * d.diff:+.3f}{unit}" if not points else f"{label} {scale * d.diff:+.1f}{unit}"
    if d.diff == 0 and noise == 0:
        return f"{label}: identical on every held-out example"
    if math.isnan(noise):
        return f"{text}: noise unknown (no standard error), not judged"
    if not real:
        return f"{text}: within noise (±{scale * noise:.3g}{unit})"
    alone = "; one seed: seed-to-seed noise not measured, rerun with --seeds 3" if d.seeds < 2 else ""
    return f"{text} (beyond noise ±{scale * noise:.3g}; {'lower' if d.diff < 0 else 'higher'}{alone})"


def speed_words(r: dict | None) -> str | None:
    if r is None:
        return None
    span = f"×{r['median']:.2f} tokens/s, range ×{r['min']:.2f}–×{r['max']:.2f} over {r['rounds']} interleaved rounds"
    if r["min"] > 1:
        return f"faster ({span})"
    if r["max"] < 1:
        return f"slower ({span})"
    return f"speed within noise ({span})"


def verdict(arm: ArmStats, ref: ArmStats, speed: dict) -> str:
    """An arm against its comparison arm, in one line (`analysis.verdicts.compare`)."""
    c = compare(arm, ref, speed)
    parts = []
    if c.params is not None and abs(c.params - 1) > 0.01:
        parts.append(f"parameters ×{c.params:.2f}")
    words = speed_words(c.speed)
    if words:
        parts.append(words)
    for r, label in ((c.peak_mem, "peak memory"), (c.saved, "activation memory")):
        if r is not None:
            parts.append(f"{label} ×{r:.2f}")
    if c.saved_long is not None and c.long_seq_len:
        parts.append(f"activation memory at {c.long_seq_len} tokens ×{c.saved_long:.2f}")
    for metric, label, points in ((Metric.MLM_LOSS, "MLM loss", False), (Metric.NSP_ACC, "NSP accuracy", True),
                                  (Metric.SOP_ACC, "SOP accuracy", True)):
        if metric in c.differences:
            parts.append(describe(c.differences[metric], label, points))
    return "; ".join(parts) if parts else "no measurable change"


def expectation(e: Mapping[str, Any], arms: dict[str, ArmStats], speed: dict) -> tuple[Outcome, str]:
    """(outcome, text) of one expected direction as spec.json holds it (`AblationSpec.to_json`:
    claim, arm, metric, direction, factor, versus, source); outcome is reproduced,
    contradicted, inconclusive or not measured (`analysis.verdicts.judge_expectation`)."""
    j = judge_expectation(e, arms, speed)
    head = f"{e['claim']} ({e.get('source', '')}), {e['arm']} vs {e.get('versus')}"
    return j.outcome, f"{head}: {_evidence(j)}"


_MISSING = {Missing.NOT_IN_RUN: "not measured in this run", Missing.NOT_TIMED: "not timed side by side"}


def _evidence(j: Judgement) -> str:
    if j.missing is not None:
        return _MISSING.get(j.missing) or f"{j.metric} missing"
    if j.speed is not None:
        return speed_words(j.speed)
    if j.ratio is not None:
        what = f"activation memory at {j.long_seq_len} tokens" if j.metric == Metric.SAVED_LONG else j.metric
        return f"{what} ×{j.ratio:.2f}"
    if j.chance is not None:
        t = j.chance
        against = f"the majority share {100 * t.chance:.1f}%" if t.chance > 0.5 else "50%"
        text = f"{100 * t.acc:.1f}% [95% {100 * t.low:.1f}–{100 * t.high:.1f}%, n = {t.n:,}] against {against}"
        return text + {Outcome.CONTRADICTED: " (below chance)",
                       Outcome.INCONCLUSIVE: "; the head is not above chance: train longer (--tokens)"}.get(j.outcome, "")
    text = describe(j.difference, j.metric, j.metric.task is not None)
    return text + ("; both sentence heads are still at chance: train longer (--tokens)" if j.heads_at_chance else "")
