"""The report on the terminal: rich tables (the markdown report is the record)."""
from __future__ import annotations


def print_table(console, title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*r)
    console.print(t)
