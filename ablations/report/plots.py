"""PNG plots of a run directory: training curves (MLM and sentence loss in separate
panels, so an arm without a sentence task is not "lower" for lack of a second term),
held-out MLM loss over training with a ± band over seeds (against tokens, FLOPs or
seconds), each arm's final loss against each cost with the Pareto front drawn as a step
line, and benchmark curves on log-scaled lengths with out-of-memory points marked."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ablations.analysis.costs import curve
from ablations.rows import BenchRow

CURVE_LABELS = {"tokens": "training tokens", "flops": "training FLOPs", "seconds": "training seconds"}
AXIS_LABELS = {"flops": "training FLOPs", "seconds": "training seconds", "memory": "peak memory (bytes)",
               "params": "unique parameters"}   # the cost axes (`ablations.analysis.costs.AXES`)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smooth(values: np.ndarray) -> np.ndarray:
    """Exponential moving average over about a tenth of the points: single-batch losses are noisy."""
    if len(values) < 10:
        return values
    alpha, out, ema = 10 / len(values), [], values[0]
    for v in values:
        ema = alpha * v + (1 - alpha) * ema
        out.append(ema)
    return np.asarray(out)


def _colour(plt, i: int):
    return plt.get_cmap("tab20").colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20]


def _mean_curve(curves: list[np.ndarray], column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and standard error over seeds on the first seed's x grid (seeds' x differ slightly)."""
    curves = [c for c in curves if c.shape[1] > column and len(c)]
    if not curves:
        return None
    x = curves[0][:, 0]
    ys = np.stack([np.interp(x, c[:, 0], c[:, column]) for c in curves])
    se = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(x)
    return x, ys.mean(0), se


def plot_losses(arms: dict, out: Path) -> list[str]:
    """loss_vs_tokens.png and loss_vs_seconds.png: MLM and sentence-task training loss."""
    plt, written = _plt(), []
    for points, xlabel, name in ((lambda r: r.train_loss, "training tokens", "loss_vs_tokens.png"),
                                 (lambda r: r.train_loss_time, "training seconds", "loss_vs_seconds.png")):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        drawn = False
        for i, (arm, stats) in enumerate(arms.items()):
            curves = [np.asarray(points(r), dtype=float) for r in stats.rows.values() if points(r)]
            for ax, column in zip(axes, (2, 3)):
                got = _mean_curve(curves, column)
                if got is None or (column == 3 and not np.any(got[1])):
                    continue  # no sentence task: nothing to draw in that panel
                ax.plot(got[0], _smooth(got[1]), label=arm, linewidth=1.3, color=_colour(plt, i),
                        linestyle="-" if i < 10 else "--")
                drawn = True
        if not drawn:
            plt.close(fig)
            continue
        for ax, what in zip(axes, ("MLM loss", "sentence-task loss (NSP/SOP)")):
            ax.set_xlabel(xlabel), ax.set_ylabel(f"training {what}, smoothed"), ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7, ncol=2)
        fig.suptitle(f"training loss vs {xlabel} (mean over seeds)")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def plot_eval_curves(arms: dict, out: Path, x: str = "tokens") -> list[str]:
    """eval_loss_vs_X.png: held-out MLM loss at each periodic evaluation, ± SE band, against
    training tokens, FLOPs or seconds (`ablations.analysis.costs.CURVE_AXES`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (arm, stats) in enumerate(arms.items()):
        curves = [np.asarray([[cx, e.eval_mlm_loss] for cx, e in curve(r, x)], dtype=float).reshape(-1, 2)
                  for r in stats.rows.values()]
        got = _mean_curve([c for c in curves if len(c) >= 2], 1)
        if got is None:
            continue
        cx, y, se = got
        ax.plot(cx, y, marker="o", markersize=3, label=arm, color=_colour(plt, i))
        if se.any():
            ax.fill_between(cx, y - se, y + se, alpha=0.2, color=_colour(plt, i))
    if not ax.lines:
        plt.close(fig)
        return []
    _unigram_lines(ax, arms, x)
    ax.set_xlabel(CURVE_LABELS[x])
    ax.set_ylabel("held-out MLM loss, first examples (mean over seeds, band ± 1 SE)")
    ax.grid(alpha=0.3), ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    name = f"eval_loss_vs_{x}.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return [name]


def _unigram_lines(ax, arms: dict, x: str) -> None:
    """The training unigram's loss on the curve examples as a horizontal line: below it a
    model has begun to learn from context. Arms scored on other examples (their own held-out
    set) may have their own line; a few distinct values are drawn, each once."""
    levels = sorted({round(e.eval_mlm_unigram_xent, 3) for st in arms.values() for r in st.rows.values()
                     for _, e in curve(r, x) if e.eval_mlm_unigram_xent is not None})
    for k, level in enumerate(levels[:3]):
        ax.axhline(level, color="black", linestyle=":", linewidth=1.2,
                   label="unigram (training split) on the curve examples" if k == 0 else None)


def plot_pareto(points: dict[str, list[tuple[str, float, float, float | None]]], fronts: dict[str, list[str]],
                out: Path) -> list[str]:
    """pareto_AXIS.png per cost axis: each arm's final loss (± SE) against its cost, labelled,
    and the front (`ablations.analysis.pareto`) as a step line. points: axis -> [(arm, cost, loss, se)]."""
    plt, written = _plt(), []
    for axis, pts in points.items():
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.8))
        for i, (arm, cx, y, se) in enumerate(pts):
            on = arm in fronts.get(axis, [])
            ax.errorbar(cx, y, yerr=se or 0, fmt="o" if on else "s", color=_colour(plt, i), capsize=3,
                        markerfacecolor=None if on else "white")
            ax.annotate(arm, (cx, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        front = sorted((cx, y) for arm, cx, y, _ in pts if arm in fronts.get(axis, []))
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", alpha=0.6,
                    linewidth=1.2, label="front (noise-aware)")
            ax.legend(fontsize=8)
        costs = [p[1] for p in pts]
        if min(costs) > 0 and max(costs) / min(costs) > 10:
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS[axis] + " (mean over seeds)"), ax.set_ylabel("final held-out MLM loss (± SE)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = f"pareto_{axis}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def plot_bench(rows: list[BenchRow], out: Path) -> list[str]:
    plt, written = _plt(), []
    for value, scale, ylabel, name in (
            (lambda r: r.peak_mem_bytes, 2**20, "peak training memory (MiB)", "memory_vs_seq_len.png"),
            (lambda r: r.saved_bytes, 2**20, "saved for backward (MiB)", "saved_bytes_vs_seq_len.png"),
            (lambda r: r.tokens_per_s, 1, "training tokens / s", "tokens_per_s_vs_seq_len.png")):
        series: dict[str, list[tuple[int, float]]] = {}
        ooms: dict[str, list[int]] = {}
        for r in rows:
            if r.status == "ok" and value(r) is not None:
                series.setdefault(r.variant, []).append((r.seq_len, value(r) / scale))
            elif r.status == "oom":
                ooms.setdefault(r.variant, []).append(r.seq_len)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        top = max(y for pts in series.values() for _, y in pts)
        for v, pts in sorted(series.items()):
            pts.sort()
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=v)
            if ooms.get(v):
                ax.scatter(ooms[v], [top * 1.5] * len(ooms[v]), marker="x", s=60, color=line.get_color(),
                           label=f"{v}: out of memory")
        ax.set_xscale("log", base=2), ax.set_yscale("log")
        ax.set_xlabel("sequence length (log scale; constant tokens per batch)"), ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both"), ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written
