"""From rows to claims: per-arm means over seeds, paired differences against the
comparison arm, and verdicts that never call noise a difference.

- Each arm's figure is the mean over its seeds ± the standard error (none with one seed).
- An arm-minus-reference difference is taken per seed, then averaged (paired).
- Its noise has two parts, and a difference is real only when it clears both:
  seed noise (the spread of the per-seed differences) and eval noise (the paired
  per-example standard error when both arms were scored on the same examples and masks,
  the unpaired one otherwise). See `core.stats`.
- Speed comes from the interleaved timing (`speed.json`): "faster" only when the ratio's
  whole min-max range over the rounds lies above 1.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ablations.rundir import results
from core.stats import Z95, judge, mean_se, paired_eval_se, speed_ratio, wilson

LOSSES = ("eval_mlm_loss", "eval_sentence_loss")
ACCURACIES = ("eval_mlm_acc", "eval_nsp_acc", "eval_sop_acc")
DETERMINISTIC = ("params_unique", "params_total", "saved_bytes", "saved_bytes_long", "peak_mem_bytes")


@dataclass
class ArmStats:
    name: str
    rows: dict[int, dict] = field(default_factory=dict)   # seed -> the latest ok row
    failed: list[dict] = field(default_factory=list)      # latest non-ok rows, one per seed

    @property
    def first(self) -> dict:
        return self.rows[min(self.rows)] if self.rows else (self.failed[0] if self.failed else {})

    def values(self, key: str) -> dict[int, float]:
        return {s: r[key] for s, r in self.rows.items() if r.get(key) is not None}

    def mean_se(self, key: str) -> tuple[float, float | None] | None:
        vals = list(self.values(key).values())
        return mean_se(vals) if vals else None

    def unigram_gap(self) -> tuple[float, float] | None:
        """(mean over seeds of held-out MLM loss minus the masked tokens' unigram entropy, its
        95% noise: the paired per-token standard errors combined over seeds); None for rows
        written before the unigram reference was recorded."""
        got = [(r["eval_mlm_unigram_gap"], r.get("eval_mlm_unigram_gap_se")) for r in self.rows.values()
               if r.get("eval_mlm_unigram_gap") is not None]
        if not got or any(se is None for _, se in got):
            return None
        return (sum(g for g, _ in got) / len(got), Z95 * math.sqrt(sum(se * se for _, se in got)) / len(got))

    def left_unigram_stage(self) -> bool | None:
        """Its held-out MLM loss is below the unigram entropy by more than its noise: it has
        learned something from context. None where the rows cannot say."""
        got = self.unigram_gap()
        return None if got is None else got[0] + got[1] < 0

    def interval(self, task: str) -> tuple[float, float, int] | None:
        """Wilson 95% interval of an accuracy, pooled over seeds: (low, high, n)."""
        hits = n = 0
        for r in self.rows.values():
            if r.get(f"eval_{task}_acc") is not None:
                k = r.get(f"eval_{task}_n") or r.get("eval_mlm_tokens" if task == "mlm" else "") or 0
                hits, n = hits + round(r[f"eval_{task}_acc"] * k), n + k
        return (*wilson(hits, n), n) if n else None


def collect(rows: list[dict]) -> dict[str, ArmStats]:
    """Every (arm, seed)'s result (`ablations.rundir.results`), grouped by arm in first-seen order."""
    arms: dict[str, ArmStats] = {}
    for (name, seed), r in results(rows).items():
        stats = arms.setdefault(name, ArmStats(name))
        if r.get("status") == "ok":
            stats.rows[seed] = r
        else:
            stats.failed.append(r)
    return arms


# -- differences -------------------------------------------------------------------------------
@dataclass
class Difference:
    metric: str
    diff: float                 # mean over shared seeds of (arm - reference)
    seed_se: float | None       # None with a single shared seed
    eval_se: float | None
    seeds: int
    paired_eval: bool

    @property
    def verdict(self) -> tuple[bool, float]:
        return judge(self.diff, self.seed_se, self.eval_se, self.seeds)


def _eval_se(metric: str, a: dict, b: dict) -> tuple[float | None, bool]:
    """The eval-set noise of one seed's difference, paired where the examples are shared."""
    if metric == "eval_mlm_loss":
        ta, tb = a.get("eval_mlm_example_tokens"), b.get("eval_mlm_example_tokens")
        if ta and ta == tb and len(ta) > 1:
            return paired_eval_se(a["eval_mlm_example_loss"], b["eval_mlm_example_loss"], ta), True
        se = [r.get("eval_mlm_loss_se") for r in (a, b)]
        return (math.hypot(*se), False) if None not in se else (None, False)
    task = metric.removeprefix("eval_").removesuffix("_acc")
    ca, cb = a.get(f"eval_{task}_correct"), b.get(f"eval_{task}_correct")
    if ca and cb and len(ca) == len(cb) > 1:
        d = [int(x) - int(y) for x, y in zip(ca, cb)]
        return statistics.stdev(d) / math.sqrt(len(d)), True
    n = [r.get(f"eval_{task}_n") or (r.get("eval_mlm_tokens") if task == "mlm" else None) for r in (a, b)]
    p = [r.get(metric) for r in (a, b)]
    if None in n or None in p or 0 in n:
        return None, False
    return math.sqrt(sum(q * (1 - q) / k for q, k in zip(p, n))), False


def difference(arm: ArmStats, ref: ArmStats, metric: str) -> Difference | None:
    seeds = sorted(set(arm.values(metric)) & set(ref.values(metric)))
    if not seeds:
        return None
    diffs = [arm.rows[s][metric] - ref.rows[s][metric] for s in seeds]
    diff, seed_se = mean_se(diffs)
    evals = [_eval_se(metric, arm.rows[s], ref.rows[s]) for s in seeds]
    eval_se = None
    if all(e is not None for e, _ in evals):
        eval_se = math.sqrt(sum(e * e for e, _ in evals)) / len(seeds)
    return Difference(metric, diff, seed_se, eval_se, len(seeds), all(p for _, p in evals))


def speed_of(speed: dict, arm: str, ref: str) -> dict | None:
    """The interleaved ratio arm/ref (tokens/s), or None when either was not timed."""
    a, b = speed.get(arm), speed.get(ref)
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok" or a.get("group") != b.get("group"):
        return None
    return speed_ratio(a["step_s"], b["step_s"])


def ratio(arm: ArmStats, ref: ArmStats, key: str) -> float | None:
    a, b = arm.mean_se(key), ref.mean_se(key)
    return a[0] / b[0] if a and b and b[0] else None


# -- words -------------------------------------------------------------------------------------
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
    parts = []
    r = ratio(arm, ref, "params_unique")
    if r is not None and abs(r - 1) > 0.01:
        parts.append(f"parameters ×{r:.2f}")
    words = speed_words(speed_of(speed, arm.name, ref.name))
    if words:
        parts.append(words)
    for key, label in (("peak_mem_bytes", "peak memory"), ("saved_bytes", "activation memory")):
        r = ratio(arm, ref, key)
        if r is not None:
            parts.append(f"{label} ×{r:.2f}")
    r, long_len = ratio(arm, ref, "saved_bytes_long"), arm.first.get("long_seq_len")
    if r is not None and long_len:
        parts.append(f"activation memory at {long_len} tokens ×{r:.2f}")
    for metric, label, points in (("eval_mlm_loss", "MLM loss", False), ("eval_nsp_acc", "NSP accuracy", True),
                                  ("eval_sop_acc", "SOP accuracy", True)):
        d = difference(arm, ref, metric)
        if d is not None:
            parts.append(describe(d, label, points))
    return "; ".join(parts) if parts else "no measurable change"


def head_at_chance(stats: ArmStats, task: str) -> bool:
    """A sentence head (NSP, SOP: two balanced classes) whose accuracy interval contains 50%."""
    iv = stats.interval(task)
    return iv is not None and iv[0] <= 0.5 <= iv[1]


def expectation(e: dict, arms: dict[str, ArmStats], speed: dict) -> tuple[str, str]:
    """(outcome, text) of one expected direction as spec.json holds it (`AblationSpec.to_json`:
    claim, arm, metric, direction, factor, versus, source); outcome is reproduced,
    contradicted, inconclusive or not measured."""
    ref_name = e.get("versus")
    arm, ref = arms.get(e["arm"]), arms.get(ref_name or "")
    head = f"{e['claim']} ({e.get('source', '')}), {e['arm']} vs {ref_name}"
    if ref_name == "chance" and arm is not None and arm.rows:
        return _above_chance(e["metric"], head, arm)
    if arm is None or ref is None or not arm.rows or not ref.rows:
        return "not measured", f"{head}: not measured in this run"
    want_lower = e["direction"] == "lower"
    metric, factor = e["metric"], e.get("factor")
    if metric == "tokens_per_s":
        r = speed_of(speed, arm.name, ref.name)
        if r is None:
            return "not measured", f"{head}: not timed side by side"
        if r["min"] <= 1 <= r["max"]:
            return "inconclusive", f"{head}: {speed_words(r)}"
        return ("reproduced" if (r["max"] < 1) == want_lower else "contradicted"), f"{head}: {speed_words(r)}"
    if metric in DETERMINISTIC or metric in ("wall_s",):
        r = ratio(arm, ref, metric)
        if r is None:
            return "not measured", f"{head}: {metric} missing"
        ok = (r < 1) == want_lower and r != 1 and (factor is None or (r <= factor if want_lower else r >= factor))
        what = (f"activation memory at {arm.first.get('long_seq_len')} tokens" if metric == "saved_bytes_long"
                else metric)
        return ("reproduced" if ok else "contradicted"), f"{head}: {what} ×{r:.2f}"
    return _noisy_expectation(metric, head, arm, ref, e["direction"])


def _noisy_expectation(metric: str, head: str, arm: ArmStats, ref: ArmStats, direction: str) -> tuple[str, str]:
    d = difference(arm, ref, metric)
    if d is None:
        return "not measured", f"{head}: {metric} missing"
    task = metric.removeprefix("eval_").removesuffix("_acc")
    points = metric in ACCURACIES
    text = f"{head}: " + describe(d, metric, points)
    if task in ("nsp", "sop") and head_at_chance(arm, task) and head_at_chance(ref, task):
        return "inconclusive", text + "; both sentence heads are still at chance: train longer (--tokens)"
    real, _ = d.verdict
    if direction == "similar":  # the claim is "no difference": it holds as far as this noise can tell
        return ("contradicted" if real else "reproduced"), text
    if not real:
        return "inconclusive", text
    return ("reproduced" if (d.diff < 0) == (direction == "lower") else "contradicted"), text


def _above_chance(metric: str, head: str, arm: ArmStats) -> tuple[str, str]:
    """A sentence head against chance: its Wilson 95% interval, pooled over seeds, must lie
    wholly above 50% and above the held-out set's majority share where the rows record it
    (a head that always answers the commoner class scores that share)."""
    task = metric.removeprefix("eval_").removesuffix("_acc")
    iv, got = arm.interval(task), arm.mean_se(metric)
    if iv is None or got is None:
        return "not measured", f"{head}: {metric} missing"
    low, high, n = iv
    majority = arm.mean_se(f"eval_{task}_majority")
    chance = max(0.5, majority[0]) if majority else 0.5
    against = f"the majority share {100 * chance:.1f}%" if chance > 0.5 else "50%"
    text = f"{head}: {100 * got[0]:.1f}% [95% {100 * low:.1f}–{100 * high:.1f}%, n = {n:,}] against {against}"
    if low > chance:
        return "reproduced", text
    if high < 0.5:
        return "contradicted", text + " (below chance)"
    return "inconclusive", text + "; the head is not above chance: train longer (--tokens)"


MARKS = {"reproduced": "✅", "contradicted": "❌", "inconclusive": "➖", "not measured": "·"}
