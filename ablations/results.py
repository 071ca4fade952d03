"""results.jsonl / bench.jsonl: one JSON line per finished arm, written atomically.

The whole file is rewritten through a temporary file and a rename on every append, so
an interrupted run never leaves a half-written line; rows are small, so this is cheap.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_row(path: Path, row: dict[str, Any]) -> None:
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    _atomic_write(path, existing + json.dumps(row, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, text)


def latest_by(rows: list[dict], key: str) -> dict[str, dict]:
    """The last row for each value of `key` (a re-run arm replaces its earlier row)."""
    out: dict[str, dict] = {}
    for row in rows:
        out[row[key]] = row
    return out
