"""The report's downstream section: fine-tuned scores beside pretraining loss and cost, and
the words for `ablations.analysis.downstream`'s numbers."""
from __future__ import annotations

from ablations.analysis.downstream import (
    UndefinedSeeds,
    Verdict,
    downstream_difference,
    savings,
    score_at_chance,
    tasks_in,
    undefined_seeds,
)
from ablations.report.tables import fmt, md_table, mib, millions
from ablations.rows import Metric, Row
from ablations.rundir import result_rows

SAVED = {Metric.PARAMS_UNIQUE: "parameters", Metric.PEAK_MEM: "peak memory"}


def undefined_words(u: UndefinedSeeds | None) -> str:
    """'' if every seed's score is defined; else e.g. 'undefined: the predictions are
    constant (2 of 3 seeds)'."""
    return "" if u is None else f"{u.why} ({u.count} of {u.seeds} seed{'s' if u.seeds > 1 else ''})"


def _places(row: Row, task: str) -> int:
    """3 decimals for a share or a correlation, 2 for a score on 0-100 (EM and F1)."""
    s = row.downstream.get(task)
    return 2 if s is not None and s.scale == 100 else 3


def fmt_score(row: Row, task: str) -> str:
    s = row.downstream.get(task)
    if s is None or not s.scored:
        return "–"
    missing = undefined_words(undefined_seeds(row, task))
    if s.score is None:
        return missing or "undefined"
    ci, p = None if None in s.ci else s.ci, _places(row, task)
    text = f"{s.score:.{p}f} ± {s.se or 0.0:.{p}f} (n={s.n}, " + \
        (f"CI {ci[0]:.{p}f}–{ci[1]:.{p}f})" if ci else "first seed's CI undefined)")
    text += f"; mean of the defined seeds, {missing}" if missing else ""
    return text + (f", at chance ({s.chance:.{p}f})" if score_at_chance(row, task) else "")


def compare_downstream(row: Row, ref: Row, task: str) -> str | None:
    """A verdict on `task` in words, or None where either score is missing or undefined."""
    d = downstream_difference(row, ref, task)
    if d is None:
        return None
    p = _places(row, task)
    label = d.label if d.label and d.label != task else f"{task} {d.metric}"
    head = f"{label} {d.diff:+.{p}f}"
    noise = f"±{d.noise:.{p}f}{', paired over the test questions' if d.paired else ''}"
    if d.verdict == Verdict.WITHIN_NOISE:
        return f"{head}: within noise ({noise})"
    if d.verdict == Verdict.AT_CHANCE:
        return f"{head}: inconclusive (both at chance)"
    return f"{head}: {'better' if d.verdict == Verdict.BETTER else 'costs downstream quality'} beyond noise " \
        f"({noise})"


def savings_words(row: Row, ref: Row) -> str:
    return ", ".join(f"{SAVED[metric]} ×{r:.2f}" for metric, r in savings(row, ref))


def downstream_markdown(rows: list[Row]) -> str:
    """The report's downstream section ("" when no arm was fine-tuned)."""
    latest: dict[str, Row] = {}  # per arm, its first seed's result (a ladder: its largest rung)
    for r in sorted(result_rows(rows), key=lambda r: r.seed):
        latest.setdefault(r.arm, r)
    tasks = tasks_in(list(latest.values()))
    if not tasks:
        return ""
    scores = {t: next(r.downstream[t] for r in latest.values() if t in r.downstream and r.downstream[t].metric)
              for t in tasks}
    headers = ["arm", "MLM loss", "params", "peak mem"] + [f"{s.of_task or t} ({s.metric})" for t, s in scores.items()]
    span = [t for t, s in scores.items() if s.of_task]
    lines = ["## Downstream (fine-tuned; test score of the best dev checkpoint)", "",
             "Mean ± standard error over fine-tuning seeds; n test examples; 95% interval of the first seed's "
             "score (Wilson for accuracy, Fisher z for correlations"
             + ("; a bootstrap over questions for exact match and F1, on 0–100 as KorQuAD's evaluator prints them"
                if span else "") + ").", ""]
    table = [[r.arm, fmt(r.eval_mlm_loss, "{:.3f}".format), fmt(r.params_unique or None, millions),
              fmt(r.peak_mem_bytes or None, lambda v: mib(v, 0))] + [fmt_score(r, t) for t in tasks]
             for r in latest.values()]
    lines.append(md_table(headers, table))
    verdicts = []
    for r in latest.values():
        ref = latest.get(r.compare_to or "")
        found = [c for t in tasks if ref is not None and (c := compare_downstream(r, ref, t))]
        if found:
            saves = savings_words(r, ref)
            what = r.component or r.arm
            verdicts.append(f"- **{what}** ({r.arm} vs {ref.arm}){': saves ' + saves if saves else ''}; "
                            + "; ".join(found) + ".")
    stuck = [f"{r.arm} ({t})" for r in latest.values() for t in tasks if score_at_chance(r, t)]
    gaps = [f"{r.arm} ({t}: {why})" for r in latest.values() for t in tasks
            if (why := undefined_words(undefined_seeds(r, t)))]
    if gaps:
        lines += ["", f"Undefined scores (a correlation of constant predictions does not exist; such seeds are left "
                      f"out of the mean, never counted as 0): {', '.join(gaps)}."]
    if stuck:
        lines += ["", "At chance (the score's interval reaches what a model that learned nothing scores: the "
                      "majority class's share, or no correlation"
                      + (", or for span QA the passage's first words, as many as a training answer has on average"
                         if span else "") + f"): {', '.join(stuck)}. Such a score says nothing "
                      "about the pretrained encoder."]
    chances = [f"{s.label} {s.chance:.2f}" for t, s in scores.items() if t in span and s.chance is not None]
    if chances:
        lines += ["", "Chance level of span QA (always answering the passage's first words, as many as a training "
                      f"answer has on average): {', '.join(chances)}."]
    files = [f"{r.arm}: {', '.join(dict.fromkeys(p for t in span if t in r.downstream for p in r.downstream[t].predictions))}"
             for r in latest.values() if any(t in r.downstream and r.downstream[t].predictions for t in span)]
    if files:
        lines += ["", "Test predictions in the official format ({question id: answer text}; KorQuAD's "
                      "`evaluate-v1.0.py` re-scores them against the test split that "
                      "`core.finetune.write_split` writes): " + "; ".join(files) + "."]
    if verdicts:
        lines += ["", "Verdicts (a difference counts when it exceeds twice the combined seed and test-set noise):",
                  "", *verdicts]
    return "\n".join(lines) + "\n"
