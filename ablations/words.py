"""Wording that the run stage's console and the report both need.

The run stage stands beside the report in the layers (neither imports the other) and the
analysis returns numbers and enums only, so the few sentences both print live here, one
layer above the analysis whose enums they word: the report words everything else itself.
"""
from __future__ import annotations

from ablations.analysis.lr_grid import GridEdge


def edge_advice(side: GridEdge | str | None) -> str:
    """What a `--lr-search` rate at the grid's edge means and what to do about it ("" inside it)."""
    if side == GridEdge.TOP:
        return ("at the grid's top, so the grid did not bracket the best rate; a short search favours high rates, "
                "so widen it upward only with a longer --lr-search-fraction")
    if side == GridEdge.BOTTOM:
        return "at the grid's bottom, so the grid did not bracket the best rate; widen --lr-grid downward"
    return ""
