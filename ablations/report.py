"""Reports from saved results: a rich table, report.md, results.csv and PNG plots.

Everything here reads only the run directory, so `python -m ablations report DIR`
re-renders a report at any time, on any machine, without re-running anything.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ablations.downstream import downstream_markdown
from ablations.results import BENCH, REPORT, RESULTS, SPEC, latest_by, read_rows, write_text

COLUMNS = [  # (key, header, formatter)
    ("status", "status", str),
    ("params_unique", "params", lambda v: _millions(v)),
    ("params_total", "params (per use)", lambda v: _millions(v)),
    ("tokens_per_s", "train tok/s", lambda v: f"{v:,.0f}"),
    ("peak_mem_bytes", "peak mem", lambda v: _mib(v)),
    ("saved_bytes", "saved for bwd", lambda v: _mib(v)),
    ("saved_bytes_long", "saved @ long", lambda v: _mib(v)),
    ("eval_mlm_loss", "MLM loss", lambda v: f"{v:.3f}"),
    ("eval_mlm_acc", "MLM acc", lambda v: f"{100 * v:.1f}%"),
    ("eval_nsp_acc", "NSP acc", lambda v: f"{100 * v:.1f}%"),
    ("eval_sop_acc", "SOP acc", lambda v: f"{100 * v:.1f}%"),
    ("wall_s", "train s", lambda v: f"{v:.0f}"),
]
RATIOS = [("params_unique", "params"), ("tokens_per_s", "train speed"), ("peak_mem_bytes", "peak memory"),
          ("saved_bytes", "saved for backward"), ("saved_bytes_long", "saved @ long")]


def _millions(v: float) -> str:
    return f"{v / 1e6:.2f}M"


def _mib(v: float) -> str:
    return f"{v / 2**20:,.1f} MiB"


def _fmt(row: dict, key: str, fn) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    try:
        return fn(v)
    except (TypeError, ValueError):
        return str(v)


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def compare(row: dict, ref: dict) -> dict[str, Any]:
    out: dict[str, Any] = {k: _ratio(row.get(k), ref.get(k)) for k, _ in RATIOS}
    for k in ("eval_mlm_loss", "eval_mlm_acc", "eval_nsp_acc", "eval_sop_acc"):
        out["d_" + k] = None if row.get(k) is None or ref.get(k) is None else row[k] - ref[k]
    se = [r.get("eval_mlm_loss_se") for r in (row, ref)]
    out["loss_noise"] = 2 * math.sqrt(se[0] ** 2 + se[1] ** 2) if all(s is not None for s in se) else None
    return out


def verdict(arm: dict, ref: dict, cmp: dict) -> str:
    parts = []
    r = cmp["params_unique"]
    if r is not None and abs(r - 1) > 0.01:
        parts.append(f"parameters ×{r:.2f}")
    r = cmp["tokens_per_s"]
    if r is not None:
        parts.append(f"{'faster' if r > 1.05 else 'slower' if r < 0.95 else 'about as fast'} (×{r:.2f} tokens/s)")
    for key, label in (("peak_mem_bytes", "peak memory"), ("saved_bytes", "activation memory")):
        r = cmp[key]
        if r is not None:
            parts.append(f"{label} ×{r:.2f}")
    r = cmp["saved_bytes_long"]
    if r is not None and arm.get("long_seq_len"):
        parts.append(f"activation memory at {arm['long_seq_len']} tokens ×{r:.2f}")
    d, noise = cmp["d_eval_mlm_loss"], cmp["loss_noise"]
    if d is not None:
        if noise is not None and abs(d) <= noise:
            parts.append(f"MLM loss {d:+.3f}: within this eval set's noise (±{noise:.3f})")
        else:
            parts.append(f"MLM loss {d:+.3f} ({'better' if d < 0 else 'worse'})")
    for task in ("nsp", "sop"):
        d = cmp[f"d_eval_{task}_acc"]
        if d is not None and abs(d) >= 0.02:
            parts.append(f"{task.upper()} accuracy {100 * d:+.1f} points")
    return "; ".join(parts) if parts else "no measurable change"


def check_expectations(spec_name: str, rows: dict[str, dict]) -> list[tuple[bool | None, str]]:
    from ablations.specs import ABLATIONS

    spec = ABLATIONS.get(spec_name)
    if spec is None:
        return []
    out = []
    for e in spec.expectations:
        arm = rows.get(e.arm)
        ref_name = e.versus or (spec.reference_of(spec.arm(e.arm)).name if spec.reference_of(spec.arm(e.arm)) else None)
        ref = rows.get(ref_name) if ref_name else None
        a = arm.get(e.metric) if arm else None
        b = ref.get(e.metric) if ref else None
        where = f"{e.arm} vs {ref_name}: {e.metric} {a if a is None else _short(a)} vs {b if b is None else _short(b)}"
        if a is None or b is None:
            out.append((None, f"{e.claim} ({e.source}) — not measured in this run ({where})"))
            continue
        ok = a < b if e.direction == "lower" else a > b
        if ok and e.factor is not None and b:
            ok = (a / b <= e.factor) if e.direction == "lower" else (a / b >= e.factor)
        ratio = f", ×{a / b:.2f}" if b else ""
        note = ""
        if e.metric in ("eval_nsp_acc", "eval_sop_acc") and all(0.4 <= x <= 0.6 for x in (a, b)):
            note = " — both near chance: the sentence heads have not learned yet; train longer (--tokens)"
        out.append((ok, f"{e.claim} ({e.source}): {where}{ratio}{note}"))
    return out


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and v > 10_000:
        return f"{v:,}"
    return str(v)


# -- plots -----------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smooth(values: list[float]) -> list[float]:
    """Exponential moving average over about a tenth of the points: single-batch losses are noisy."""
    if len(values) < 10:
        return values
    alpha, out, ema = 10 / len(values), [], values[0]
    for v in values:
        ema = alpha * v + (1 - alpha) * ema
        out.append(ema)
    return out


def plot_losses(rows: list[dict], out: Path) -> list[str]:
    curves = [r for r in rows if r.get("train_loss")]
    if not curves:
        return []
    plt = _plt()
    written = []
    for key, xlabel, name in (("train_loss", "training tokens", "loss_vs_tokens.png"),
                              ("train_loss_time", "training seconds", "loss_vs_seconds.png")):
        fig, ax = plt.subplots(figsize=(8, 5))
        colours = plt.get_cmap("tab20").colors
        for i, r in enumerate(curves):
            pts = r.get(key) or []
            if pts:
                ax.plot([p[0] for p in pts], _smooth([p[1] for p in pts]), label=r["arm"], linewidth=1.3,
                        color=colours[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20],
                        linestyle="-" if i < 10 else "--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (MLM + sentence task), smoothed")
        ax.set_title(f"{curves[0].get('ablation')}: loss vs {xlabel}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def plot_bench(rows: list[dict], out: Path) -> list[str]:
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return []
    plt = _plt()
    written = []
    for key, ylabel, name in (("peak_mem_bytes", "peak training memory (MiB)", "memory_vs_seq_len.png"),
                              ("saved_bytes", "saved for backward (MiB)", "saved_bytes_vs_seq_len.png"),
                              ("tokens_per_s", "training tokens / s", "tokens_per_s_vs_seq_len.png")):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in ok:
            if r.get(key) is not None:
                series.setdefault(r["variant"], []).append((r["seq_len"], r[key]))
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for v, pts in sorted(series.items()):
            pts.sort()
            scale = 2**20 if "bytes" in key else 1
            ax.plot([p[0] for p in pts], [p[1] / scale for p in pts], marker="o", label=v)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (constant tokens per batch)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


# -- markdown and csv --------------------------------------------------------------------------------
def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    flat_rows = []
    for r in rows:
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items() if k != "config"}
        flat.update({f"config.{k}": v for k, v in (r.get("config") or {}).items()})
        flat_rows.append(flat)
    keys: list[str] = []
    for f in flat_rows:
        keys += [k for k in f if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(flat_rows)
    write_text(path, buf.getvalue())


def _training_report(rows: list[dict], out: Path, console) -> str:
    latest = latest_by(rows, "arm")
    ordered = list(latest.values())
    name = ordered[0].get("ablation", out.name)
    spec_info = {}
    if (out / SPEC).is_file():
        spec_info = json.loads((out / SPEC).read_text())
    opts = spec_info.get("options", {})
    md = [f"# Ablation `{name}`", ""]
    from ablations.specs import ABLATIONS

    if name in ABLATIONS:
        md += [ABLATIONS[name].description, ""]
    first = ordered[0]
    md += [f"- Corpus: {first.get('corpus')}",
           f"- Device: {first.get('device')}",
           f"- Size {opts.get('size', '?')}, sequence length {opts.get('seq_len', '?')}, batch {opts.get('batch_size', '?')}, "
           f"budget per arm {spec_info.get('budget_per_arm', opts.get('budget', '?'))}, seed {first.get('seed')}",
           "- Every arm: the same data, seed and budget; evaluated on the same held-out examples with the same "
           "fixed masks and a fixed LSH hashing seed.",
           "- Speed: median tokens/s of the arm's own training steps (forward, backward, AdamW; batch loading "
           "excluded), after two warm-up steps. Peak memory: "
           f"{first.get('memory_method') or 'see core/measure.py'}. Saved for backward: bytes autograd keeps for "
           "one step (deterministic), parameters excluded; \"saved @ long\" is the same figure for one sequence "
           "of the long length. It leaves out transient memory (an attention matrix that a reversible layer "
           "recomputes during backward, for example): `python -m ablations run seq_scaling` measures peak "
           "memory against length.", ""]
    headers = ["arm"] + [h for _, h, _ in COLUMNS]
    table = [[r["arm"]] + [_fmt(r, k, f) for k, _, f in COLUMNS] for r in ordered]
    md += ["## Results", "", _md_table(headers, table), ""]
    deltas, verdicts = [], []
    for r in ordered:
        ref = latest.get(r.get("compare_to") or "")
        if ref is None or r.get("status") != "ok" or ref.get("status") != "ok":
            continue
        c = compare(r, ref)
        deltas.append([r["arm"], ref["arm"]] + [("–" if c[k] is None else f"×{c[k]:.2f}") for k, _ in RATIOS]
                      + [("–" if c["d_eval_mlm_loss"] is None else f"{c['d_eval_mlm_loss']:+.3f}"),
                         ("–" if c["loss_noise"] is None else f"±{c['loss_noise']:.3f}"),
                         ("–" if c["d_eval_nsp_acc"] is None else f"{100 * c['d_eval_nsp_acc']:+.1f}"),
                         ("–" if c["d_eval_sop_acc"] is None else f"{100 * c['d_eval_sop_acc']:+.1f}")])
        what = r.get("component") or r.get("description") or r["arm"]
        verdicts.append(f"- **{what}** ({r['arm']} vs {ref['arm']}): {verdict(r, ref, c)}.")
    if deltas:
        md += ["## Each arm against its comparison arm", "",
               "Ratios are arm / reference; Δ are differences. The noise column is twice the combined standard "
               "error of the two held-out losses (sampling noise of the eval set only; seed-to-seed training "
               "noise is not included).", "",
               _md_table(["arm", "vs"] + [h for _, h in RATIOS] + ["Δ MLM loss", "noise", "Δ NSP acc", "Δ SOP acc"],
                         deltas), "", "## Verdicts", ""] + verdicts + [""]
    checks = check_expectations(name, latest)
    if checks:
        md += ["## The papers' expected directions", ""]
        md += [f"- {'✅' if ok else '❌' if ok is False else '➖'} {text}" for ok, text in checks]
        md += [""]
    failed = [r for r in ordered if r.get("status") != "ok"]
    if failed:
        md += ["## Arms that did not finish", ""] + [f"- {r['arm']}: {r['status']} — {r.get('error')}" for r in failed] + [""]
    twins = [r for r in ordered if r.get("same_as")]
    if twins:
        md += ["Arms with the same configuration as another were trained once: "
               + ", ".join(f"{r['arm']} = {r['same_as']}" for r in twins) + ".", ""]
    plots = plot_losses(ordered, out)
    if plots:
        md += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    md += ["Small budgets give indicative losses only: compare arms within one report, and train longer "
           "(`--tokens`, `--time-budget`) before drawing conclusions about loss.", ""]
    write_csv(ordered, out / "results.csv")
    if console is not None:
        keep = ["arm", "status", "params", "train tok/s", "peak mem", "saved for bwd", "MLM loss", "NSP acc", "SOP acc"]
        idx = [headers.index(h) for h in keep]
        _print_table(console, name, keep, [[r[i] for i in idx] for r in table])
        for v in verdicts:
            console.print(v.replace("**", ""))
        for ok, text in checks:
            console.print(f"{'✅' if ok else '❌' if ok is False else '➖'} {text}")
    return "\n".join(md)


def _bench_report(rows: list[dict], out: Path, console) -> str:
    latest = {(r["variant"], r["seq_len"]): r for r in rows}
    ordered = sorted(latest.values(), key=lambda r: (r["variant"], r["seq_len"]))
    headers = ["variant", "seq len", "batch", "status", "train tok/s", "infer tok/s", "peak mem", "saved for bwd"]
    table = [[r["variant"], str(r["seq_len"]), str(r["batch_size"]), r["status"],
              _fmt(r, "tokens_per_s", lambda v: f"{v:,.0f}"), _fmt(r, "infer_tokens_per_s", lambda v: f"{v:,.0f}"),
              _fmt(r, "peak_mem_bytes", _mib), _fmt(r, "saved_bytes", _mib)] for r in ordered]
    first = ordered[0]
    md = ["# Memory and speed against sequence length", "", f"- Device: {first.get('device')}",
          f"- Size {first.get('size')}; batch adjusted to a constant number of tokens per batch", "",
          _md_table(headers, table), ""]
    plots = plot_bench(ordered, out)
    md += [f"![{p}]({p})" for p in plots] + [""]
    write_csv(ordered, out / "bench.csv")
    if console is not None:
        _print_table(console, "bench", headers, table)
    return "\n".join(md)


def _print_table(console, title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*r)
    console.print(t)


def render_report(out: str | Path, console=None) -> Path:
    out = Path(out)
    results, bench = read_rows(out / RESULTS), read_rows(out / BENCH)
    if not results and not bench:
        raise FileNotFoundError(f"no {RESULTS} or {BENCH} in {out}: run an ablation or a bench there first")
    parts = []
    if results:
        parts.append(_training_report(results, out, console))
        parts.append(downstream_markdown(results))  # "" when no arm was fine-tuned
    if bench:
        parts.append(_bench_report(bench, out, console))
    path = out / REPORT
    write_text(path, "\n\n".join(p for p in parts if p))
    if console is not None:
        console.print(f"report: {path}")
    return path
