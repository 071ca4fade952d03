"""The report's downstream section: fine-tuned scores beside pretraining loss and cost."""
from __future__ import annotations

from ablations.analysis.downstream import (
    compare_downstream,
    fmt_score,
    savings,
    score_at_chance,
    tasks_in,
    undefined_seeds,
)
from ablations.report.tables import fmt, md_table, mib, millions
from ablations.rundir import result_rows


def downstream_markdown(rows: list[dict]) -> str:
    """The report's downstream section ("" when no arm was fine-tuned)."""
    latest: dict[str, dict] = {}  # per arm, its first seed's result (a ladder: its largest rung)
    for r in sorted(result_rows(rows), key=lambda r: r.get("seed", 0)):
        latest.setdefault(r["arm"], r)
    tasks = tasks_in(list(latest.values()))
    if not tasks:
        return ""
    headers = ["arm", "MLM loss", "params", "peak mem"] + [
        f"{t} ({next(r[f'downstream_{t}_metric'] for r in latest.values() if r.get(f'downstream_{t}_metric'))})"
        for t in tasks]
    lines = ["## Downstream (fine-tuned; test score of the best dev checkpoint)", "",
             "Mean ± standard error over fine-tuning seeds; n test examples; 95% interval of the first seed's "
             "score (Wilson for accuracy, Fisher z for correlations).", ""]
    table = [[r["arm"], fmt(r.get("eval_mlm_loss"), "{:.3f}".format), fmt(r.get("params_unique") or None, millions),
              fmt(r.get("peak_mem_bytes") or None, lambda v: mib(v, 0))] + [fmt_score(r, t) for t in tasks]
             for r in latest.values()]
    lines.append(md_table(headers, table))
    verdicts = []
    for r in latest.values():
        ref = latest.get(r.get("compare_to") or "")
        found = [c for t in tasks if ref is not None and (c := compare_downstream(r, ref, t))]
        if found:
            saves = savings(r, ref)
            what = r.get("component") or r["arm"]
            verdicts.append(f"- **{what}** ({r['arm']} vs {ref['arm']}){': saves ' + saves if saves else ''}; "
                            + "; ".join(found) + ".")
    stuck = [f"{r['arm']} ({t})" for r in latest.values() for t in tasks if score_at_chance(r, t)]
    gaps = [f"{r['arm']} ({t}: {why})" for r in latest.values() for t in tasks if (why := undefined_seeds(r, t))]
    if gaps:
        lines += ["", f"Undefined scores (a correlation of constant predictions does not exist; such seeds are left "
                      f"out of the mean, never counted as 0): {', '.join(gaps)}."]
    if stuck:
        lines += ["", f"At chance (the score's interval reaches what a model that learned nothing scores: the "
                      f"majority class's share, or no correlation): {', '.join(stuck)}. Such a score says nothing "
                      "about the pretrained encoder."]
    if verdicts:
        lines += ["", "Verdicts (a difference counts when it exceeds twice the combined seed and test-set noise):",
                  "", *verdicts]
    return "\n".join(lines) + "\n"
