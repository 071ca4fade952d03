"""What it means when `--lr-search` picks the smallest or largest rate of its grid.

The grid did not bracket the best rate, but the two edges call for different remedies. A
short search favours high rates (the short-horizon bias;
docs/findings/2026-12-01-shared-recipe.md#the-grid-and-the-fraction: on kowiki a 25% search's
4x lost at the full budget and left a seed at the unigram stage), so at the top the remedy is a
longer search, not only a wider grid (`ablations.words.edge_advice` says so, for the
search's console lines and the report alike).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum


class GridEdge(StrEnum):
    TOP = "top"
    BOTTOM = "bottom"


def edge_side(chosen: float | None, rates: Iterable[float]) -> GridEdge | None:
    """The grid's edge the chosen rate lies at (None: bracketed, or nothing chosen)."""
    rates = sorted(rates)
    if chosen is None or len(rates) < 2:
        return None
    near = lambda a, b: math.isclose(a, b, rel_tol=1e-5)  # noqa: E731 (rows keep 6 significant digits)
    return GridEdge.TOP if near(chosen, rates[-1]) else GridEdge.BOTTOM if near(chosen, rates[0]) else None
