"""The run directory's layout and its rows: the one place that knows the file names.

    RUN_DIR/
      spec.json        the ablation and its resolved options
      results.jsonl    one JSON line per finished arm (training ablations)
      bench.jsonl      one JSON line per measured (variant, length) (bench ablations)
      report.md, results.csv, bench.csv, *.png    rendered from the rows
      arms/NAME/       an unfinished arm's checkpoint

The runner and the bench append rows; the report reads them. Rows are appended by
rewriting the file through a temporary file and a rename, so an interrupted run never
leaves a half-written line; rows are small, so this is cheap.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.files import atomic_write_text

RESULTS, BENCH, SPEC, REPORT = "results.jsonl", "bench.jsonl", "spec.json", "report.md"
ARMS = "arms"


def arm_dir(run_dir: Path, arm: str) -> Path:
    """Where an arm keeps its checkpoint while it trains (a file-system-safe name)."""
    return run_dir / ARMS / re.sub(r"[^A-Za-z0-9_.+=-]+", "_", arm)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n} is not valid JSON ({err}); fix or remove that line") from None
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write_text(path, existing + json.dumps(row, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def latest_by(rows: list[dict], key: str) -> dict[str, dict]:
    """The last row for each value of `key` (a re-run arm replaces its earlier row)."""
    out: dict[str, dict] = {}
    for row in rows:
        out[row[key]] = row
    return out
