"""The run directory's layout and its rows: the one place that knows the file names.

    RUN_DIR/
      spec.json        the ablation and its resolved options
      results.jsonl    one JSON line per finished arm (training ablations)
      bench.jsonl      one JSON line per measured (variant, length) (bench ablations)
      speed.json       the arms' training steps timed side by side, round by round
      report.md, results.csv, bench.csv, *.png    rendered from the rows
      arms/NAME/seed-K/  an (arm, seed)'s lease while it trains, and its checkpoint
                         (with --ladder: the long stable-phase run's), then its final weights
      arms/NAME/seed-K/rung-k/  --ladder: rung k's cooldown, branched from the stable run

The runner and the bench append rows; the report reads them. A row is one line, appended
under an exclusive file lock in a single write, so several processes (or machines on one
shared file system) can write one run directory without losing or duplicating rows; a
reader skips a torn last line left by a killed writer. Reports are written atomically.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from core.files import append_line, atomic_write_text

RESULTS, BENCH, SPEC, REPORT = "results.jsonl", "bench.jsonl", "spec.json", "report.md"
SPEED = "speed.json"  # every arm timed side by side after training (interleaved rounds)
ARMS = "arms"


def arm_dir(run_dir: Path, arm: str, seed: int = 0) -> Path:
    """Where an (arm, seed) keeps its lease and checkpoint while it trains (file-system-safe)."""
    return run_dir / ARMS / re.sub(r"[^A-Za-z0-9_.+=-]+", "_", arm) / f"seed-{seed}"


def rung_dir(unit_dir: Path, rung: int) -> Path:
    """Where a ladder's rung k cools down, inside its (arm, seed) directory."""
    return unit_dir / f"rung-{rung}"


def is_headline(row: dict[str, Any]) -> bool:
    """A run's one result per (arm, seed): every row, except a ladder's lower rungs (the
    largest rung is the arm's usual row; the others feed budget curves)."""
    return not row.get("ladder") or row.get("rung") == row["ladder"] - 1


def ensure_run_dir(path: Path) -> None:
    """Create the run directory and prove it writable, with one line that names the fix."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a directory; give a directory (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write the run directory {path}: {err.strerror or err}"
                         f"{f' ({err.filename})' if err.filename and str(err.filename) != str(path) else ''}; "
                         "choose a writable --out") from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row. A line that is not JSON can only be a row torn by a writer killed
    mid-write (rows are written whole, in one call): it is skipped with a warning naming it."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{n} is a torn row (a writer was killed mid-write); skipped", stacklevel=2)
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    append_line(path, json.dumps(row, default=str))


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def latest_by(rows: list[dict], key: str) -> dict[str, dict]:
    """The last row for each value of `key` (a re-run arm replaces its earlier row); a
    ladder's lower rungs are not an arm's row."""
    out: dict[str, dict] = {}
    for row in filter(is_headline, rows):
        out[row[key]] = row
    return out
