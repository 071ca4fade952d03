"""Markdown tables and the report's number formats: one place for each, so that every
section writes a megabyte, a million parameters or a missing value the same way."""
from __future__ import annotations

import math
from collections.abc import Callable


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def millions(v: float) -> str:
    return f"{v / 1e6:.2f}M"


def mib(v: float, digits: int = 1) -> str:
    return f"{v / 2**20:,.{digits}f} MiB"


def fmt(v, fn: Callable[[float], str]) -> str:
    """`fn(v)`, or "–" for a missing or NaN value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    try:
        return fn(v)
    except (TypeError, ValueError):
        return str(v)


def pm(ms: tuple[float, float | None] | None, form: str = "{:.3f}", scale: float = 1.0) -> str:
    """'0.512 ± 0.004' from (mean, standard error); no ± with one seed."""
    if ms is None:
        return "–"
    mean, se = ms
    return form.format(scale * mean) + ("" if se is None else " ± " + form.format(scale * se))


def cost_text(axis: str, v: float | None) -> str:
    """A cost on one of the analysis axes (flops, seconds, memory, params)."""
    if v is None:
        return "–"
    if axis == "memory":
        return mib(v)
    if axis == "params":
        return millions(v)
    return f"{v:,.0f}" if axis == "seconds" and v >= 100 else f"{v:.3g}"
