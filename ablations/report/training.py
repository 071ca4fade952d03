"""The training report: results, each arm against its comparison arm, verdicts, the papers'
expected directions, failures and missing arms. Claims come from `ablations.analysis`
(means over seeds, paired differences, noise); what the ablation is (its description,
expected directions, GPU budget) from spec.json.
"""
from __future__ import annotations

import math
from pathlib import Path

from ablations.analysis.costs import CURVE_AXES
from ablations.analysis.lr_grid import edge_side
from ablations.analysis.verdicts import ArmStats, collect, difference, ratio, speed_of
from ablations.analysis.worth import analyse
from ablations.report.console import print_table
from ablations.report.plots import plot_eval_curves, plot_losses
from ablations.report.results_csv import write_csv
from ablations.report.tables import fmt, md_table, mib, millions, pm
from ablations.report.verdicts import MARKS, expectation, verdict
from ablations.report.worth import csv_columns, section
from ablations.rows import ACCURACY, Metric, Row
from ablations.rundir import RESULTS_CSV, SPEED, read_json, read_spec
from ablations.words import edge_advice
from variants import SIZES


def _acc(stats: ArmStats, task: str) -> str:
    ms, iv = stats.mean_se(ACCURACY[task]), stats.interval(task)
    if ms is None:
        return "–"
    text = pm(ms, "{:.1f}", 100) + "%"
    return text + (f" [{100 * iv[0]:.1f}–{100 * iv[1]:.1f}]" if iv and task != "mlm" else "")


def _result_rows(arms: dict[str, ArmStats], speed: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["arm", "status", "seeds", "params", "speed, side by side (tok/s)", "tok/s during training",
               "peak mem", "saved for bwd", "MLM loss", "MLM acc", "NSP acc [95%]", "SOP acc [95%]",
               "MLM loss − unigram (95%)"]
    table = []
    for name, st in arms.items():
        f = st.first
        status = "ok" if st.rows else (_status(st.failed[0]) if st.failed else "?")
        if st.rows and st.failed:
            status = f"ok ×{len(st.rows)}, " + ", ".join(_status(r) for r in st.failed)
        sp = speed.get(name) or {}
        side = "–"
        if sp.get("status") == "ok" and sp.get("step_s"):
            rates = sorted(sp["tokens"] / t for t in sp["step_s"])
            side = f"{rates[len(rates) // 2]:,.0f} [{rates[0]:,.0f}–{rates[-1]:,.0f}]"
        table.append([name, status, str(len(st.rows)), fmt(f.params_unique, millions), side,
                      pm(st.mean_se(Metric.TOKENS_PER_S), "{:,.0f}"), fmt(f.peak_mem_bytes, mib),
                      fmt(f.saved_bytes, mib), pm(st.mean_se(Metric.MLM_LOSS)), _acc(st, "mlm"),
                      _acc(st, "nsp"), _acc(st, "sop"), _unigram_cell(st)])
    return headers, table


def _status(row: Row) -> str:
    """A row's status as the table shows it ("?": a row that records none)."""
    return "?" if row.status is None else row.status


def _unigram_cell(st: ArmStats) -> str:
    """'-0.412 ± 0.031: learns from context' or '+0.020 ± 0.030: unigram stage'."""
    got = st.unigram_gap()
    if got is None:
        return "–"
    gap, noise = got
    return f"{gap:+.3f} ± {noise:.3f}: " + ("learns from context" if st.left_unigram_stage() else "unigram stage")


def _comparison_rows(arms: dict[str, ArmStats], speed: dict) -> tuple[list[list[str]], list[str]]:
    deltas, verdicts = [], []
    for name, st in arms.items():
        ref = arms.get(st.first.compare_to or "")
        if ref is None or not st.rows or not ref.rows:
            continue
        sp = speed_of(speed, name, ref.name)
        row = [name, ref.name] + [fmt(ratio(st, ref, k), lambda v: f"×{v:.2f}")
                                  for k in (Metric.PARAMS_UNIQUE, Metric.PEAK_MEM, Metric.SAVED, Metric.SAVED_LONG)]
        row.append(f"×{sp['median']:.2f} [{sp['min']:.2f}–{sp['max']:.2f}]" if sp else "–")
        for metric, scale in ((Metric.MLM_LOSS, 1), (Metric.NSP_ACC, 100), (Metric.SOP_ACC, 100)):
            d = difference(st, ref, metric)
            if d is None:
                row.append("–")
                continue
            real, noise = d.verdict
            row.append(f"{scale * d.diff:+.3g} (noise ±{scale * noise:.2g}{', paired' if d.paired_eval else ''})"
                       if not math.isnan(noise) else f"{scale * d.diff:+.3g}")
        deltas.append(row)
        what = st.first.component or st.first.description or name
        verdicts.append(f"- **{what}** ({name} vs {ref.name}): {verdict(st, ref, speed)}.")
    return deltas, verdicts


def _warnings(arms: dict[str, ArmStats], spec_info: dict, name: str) -> list[str]:
    """The report's first lines: is this run able to show the effect at all?"""
    out = []
    stuck = [a for a, st in arms.items() if st.rows and st.at_unigram_stage()]
    if stuck:
        out.append(f"> **No learning beyond unigram frequencies** in {', '.join(stuck)}: their held-out MLM loss is "
                   "not below the loss of the training split's unigram distribution on the same held-out tokens "
                   "(the context-free predictor a model can learn) beyond noise "
                   "(rows without that reference: accuracy not above always predicting the most frequent token). "
                   "Their losses say nothing about the components yet; train longer (`--tokens`) or use "
                   "`--budget gpu`.")
    shared = sorted({a for a, st in arms.items() for r in st.rows.values() if (r.workers or 1) > 1})
    if shared:
        out.append(f"> **Trained side by side** (`--workers`): {', '.join(shared)} trained while other arms shared "
                   "the CPU cores, so their training seconds and during-training throughput are not comparable "
                   "between arms; the side-by-side speed table is (it times every arm alone, in turn).")
    gpu = spec_info.get("gpu_budget") or {}
    opts = spec_info.get("options", {})
    if gpu:
        tokens = (spec_info.get("budget_per_arm") or {}).get("max_tokens")
        met = tokens is not None and tokens >= gpu.get("tokens", 0) and _size_rank(opts.get("size")) >= \
            _size_rank(gpu.get("size"))
        want = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in gpu.items() if k != "why")
        out.append(f"> Budget: this run {'meets' if met else 'is far below'} the budget at which the loss effect "
                   f"is expected ({want}: {gpu.get('why', '')}). "
                   + ("" if met else "Its parameter, memory and speed figures stand; read loss differences as "
                      "indicative, and trust only those marked beyond noise."))
    return out


def _size_rank(size: str | None) -> int:
    """A size's place among the variants' sizes, smallest first (-1 when unknown or unset)."""
    order = list(SIZES)
    return order.index(size) if size in order else -1


UNIGRAM_NOTE = ("- *MLM loss − unigram*: the held-out MLM loss minus the loss of the training split's unigram "
                "distribution on the same masked tokens (paired per token, 95% noise); below zero beyond noise, an "
                "arm learns from context. The held-out tokens' own unigram entropy, a lower bound no trained model "
                "reaches on a small set, is recorded as `eval_mlm_unigram_entropy`.")


def _eval_sets(arms: dict[str, ArmStats]) -> str:
    f = next((st.first for st in arms.values() if st.rows), None)
    examples = f.eval_mlm_examples if f is not None and f.eval_mlm_examples is not None else "?"
    parts = [f"MLM {f.eval_mlm_tokens:,} masked tokens in {examples} examples"
             if f is not None and isinstance(f.eval_mlm_tokens, int) else "MLM: –"]
    small = []
    for task in ("nsp", "sop"):
        n = f.accuracy(task).n if f is not None else None
        if n:
            parts.append(f"{task.upper()} {n:,} pairs")
            small += [task.upper()] if n < 2000 else []
    note = (f" {' and '.join(small)} fall short of 2,000 pairs: the corpus's held-out documents allow no more, "
            "so their intervals are wide." if small else "")
    return "- Held-out sets (the same for every arm where the data allows): " + "; ".join(parts) + "." + note


def training_report(rows: list[Row], out: Path, console, x: str = "tokens") -> str:
    name = rows[0].ablation or out.name
    spec_info = read_spec(out)
    # the spec's order, not the order rows finished in (--workers, --shard: any order)
    order = {a: i for i, a in enumerate(spec_info.get("arms", []))}
    arms = dict(sorted(collect(rows).items(), key=lambda item: order.get(item[0], len(order))))
    speed = read_json(out / SPEED)
    opts = spec_info.get("options", {})
    first = next(iter(arms.values())).first
    warnings = _warnings(arms, spec_info, name)
    worth = analyse(rows, arms)
    md = [f"# Ablation `{name}`", ""] + warnings + [""] + section(arms, worth, out)
    if spec_info.get("description"):
        md += [spec_info["description"], ""]
    seeds = spec_info.get("seeds") or sorted({s for st in arms.values() for s in st.rows})
    md += [f"- Corpus: {first.corpus}; device: {first.device}",
           f"- Size {opts.get('size', '?')}, sequence length {opts.get('seq_len', '?')}, batch "
           f"{opts.get('batch_size', '?')}, budget per arm {spec_info.get('budget_per_arm', '?')}"
           + (f" (arms matched on {spec_info['budget_kind']})" if spec_info.get("budget_kind") else "")
           + f", seeds {seeds}",
           _eval_sets(arms), UNIGRAM_NOTE,
           "- Figures are means over seeds ± their standard error; accuracies carry a Wilson 95% interval pooled "
           "over seeds. See docs/reading-a-report.md.", ""]
    headers, table = _result_rows(arms, speed)
    md += ["## Results", "", md_table(headers, table), ""]
    md += _rates_section(arms)
    deltas, verdicts = _comparison_rows(arms, speed)
    if deltas:
        md += ["## Each arm against its comparison arm", "",
               "Ratios are arm / reference. Speed: the ratio of tokens/s per interleaved round, median [min–max]. "
               "Δ are per-seed differences averaged over seeds; the noise is the larger 95% margin of the seed "
               "noise (Student's t over the seeds) and the eval noise (paired per example where both arms saw the "
               "same examples).", "",
               md_table(["arm", "vs", "params", "peak memory", "saved for bwd", "saved @ long", "speed",
                          "Δ MLM loss", "Δ NSP acc (pts)", "Δ SOP acc (pts)"], deltas),
               "", "## Verdicts", ""] + verdicts + [""]
    md += _expectation_lines(spec_info.get("expectations") or [], arms, speed)
    md += _failures(arms)
    md += _missing(arms, spec_info, seeds)
    # the held-out curve against every cost axis, the one asked for (`report --x`) first
    axes = [x] + [a for a in CURVE_AXES if a != x]
    plots = plot_losses(arms, out) + [p for a in axes for p in plot_eval_curves(arms, out, a)]
    if plots:
        md += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    write_csv(rows, out / RESULTS_CSV, csv_columns(worth))
    if console is not None:
        _print_summary(console, name, headers, table, warnings + verdicts, worth)
    return "\n".join(md)


def _print_summary(console, name: str, headers: list[str], table: list[list[str]], lines: list[str], worth) -> None:
    keep = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
    print_table(console, name, [headers[i] for i in keep], [[r[i] for i in keep] for r in table])
    for line in lines:
        console.print(line.replace("**", "").removeprefix("> "))
    if worth.fronts.axes:
        console.print(f"Pareto front over {', '.join(worth.fronts.axes)}: {', '.join(worth.fronts.all_axes)}")


def _rates_section(arms: dict[str, ArmStats]) -> list[str]:
    """Each arm's learning rate and where it came from; with --lr-search the rates tried,
    their held-out losses and what the search cost (kept out of the arm's own cost)."""
    firsts = {n: st.first for n, st in arms.items() if st.rows}
    if not any(f.lr_source for f in firsts.values()):
        return []
    tuned = any(f.lr_search for f in firsts.values())
    lines = ["## Learning rates", "", "Arms compared at " + ("rates tuned per arm (`--lr-search`)" if tuned else
             "the rates below, not tuned per arm (`--lr-search` tunes them)") + ".", ""]
    for name, f in firsts.items():
        lr = f.config.get("train.lr")
        line = f"- {name}: lr {lr:.3g} ({f.lr_source or 'source not recorded'})" if lr else f"- {name}: –"
        search = f.lr_search
        if search:
            tried = ", ".join(f"{float(k):.3g}: {'–' if v is None else f'{v:.3f}'}" for k, v in search.losses.items())
            line += (f"; held-out MLM loss by rate {tried}; search cost {search.flops:.3g} FLOPs, "
                     f"{search.seconds:.0f} s (not counted in the arm's cost)")
            side = edge_side(search.chosen, (float(k) for k in search.losses))
            if side:
                line += f"; **the best rate is {edge_advice(side)}**"
        lines.append(line + ".")
    return lines + [""]


def _expectation_lines(expectations: list[dict], arms: dict[str, ArmStats], speed: dict) -> list[str]:
    if not expectations:
        return []
    lines = ["## The papers' expected directions", "",
             "✅ reproduced, ❌ contradicted beyond noise, ➖ inconclusive (within noise, or heads still at chance).", ""]
    for e in expectations:
        outcome, text = expectation(e, arms, speed)
        lines.append(f"- {MARKS[outcome]} {outcome}: {text}")
    return lines + [""]


def _failures(arms: dict[str, ArmStats]) -> list[str]:
    failed = [r for st in arms.values() for r in st.failed]
    lines = []
    if failed:
        lines += ["## Arms that did not finish", ""] + [
            f"- {r.arm} (seed {r.seed}): {_status(r)} — {r.error}" for r in failed] + [""]
    twins = sorted({(st.name, st.first.same_as) for st in arms.values() if st.first.same_as})
    if twins:
        lines += ["Arms with the same configuration as another were trained once: "
                  + ", ".join(f"{a} = {b}" for a, b in twins) + ".", ""]
    return lines


def _missing(arms: dict[str, ArmStats], spec_info: dict, seeds: list[int]) -> list[str]:
    """Arms (and seeds) of the ablation with no row yet: parts still running elsewhere
    (--shard, --arms), or never started. spec.json lists the ablation's arms."""
    missing = []
    for name in spec_info.get("arms", []):
        st = arms.get(name)
        have = set(st.rows) | {r.seed for r in st.failed} if st else set()
        lacking = [s for s in seeds if s not in have]
        if lacking:
            missing.append(f"- {name}" + (f" (seeds {', '.join(map(str, lacking))})" if len(seeds) > 1 else ""))
    if not missing:
        return []
    return ["## Missing arms", "", f"{len(missing)} of {len(spec_info['arms'])} arms have no result yet (still "
            "training elsewhere, or in a part not yet run); re-run `report` once they finish:", ""] + missing + [""]


