"""The run directory: every file name in it, its rows, and the one rule for which rows are results.

    RUN_DIR/
      spec.json        the ablation as run: its arms, description, expected directions, GPU
                       budget and resolved options (the report reads these, never the catalogue)
      results.jsonl    one JSON line per finished (arm, seed) (training ablations)
      bench.jsonl      one JSON line per measured (variant, length) (bench ablations)
      speed.json       the arms' training steps timed side by side, round by round
      report.md, results.csv, bench.csv, *.png    rendered from the files above
      arms/ARM/seed-K/   an (arm, seed)'s lease while it trains, its checkpoint (with
                         --ladder: the stable-phase run's), then its kept final weights;
                         unit.json / result.json while torchrun's ranks train it
      arms/ARM/seed-K/rung-k/   --ladder: rung k's cooldown, branched from the stable run
                                (branch.json: the stable run's progress at the branch)

ARM is the arm's name escaped so that two names never share a directory (`arm_dirname`).

Rows are appended, one line each, under an exclusive file lock in a single write, so
several processes (or machines on one shared file system) can write one run directory
without losing or duplicating rows; a reader skips a torn last line left by a killed
writer. Everything else is written atomically.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.files import append_line, atomic_write_text

RESULTS, BENCH, SPEC, REPORT = "results.jsonl", "bench.jsonl", "spec.json", "report.md"
RESULTS_CSV, BENCH_CSV = "results.csv", "bench.csv"
SPEED = "speed.json"    # every arm timed side by side after training (interleaved rounds)
ARMS = "arms"
UNIT, RANK_RESULT = "unit.json", "result.json"  # a unit handed to torchrun's ranks, and rank 0's answer
BRANCH = "branch.json"  # in a rung's directory: the stable run's progress its cooldown branched from

FINISHED = ("ok", "oom", "nan")  # a unit that ended as one of these is a result; "error" is retried

# characters an arm's directory name keeps as they are; "%" is not among them, so the escape is reversible
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+=-")


def arm_dirname(arm: str) -> str:
    """An arm's name as one path component, injectively: every other character becomes %XX
    (its UTF-8 bytes), and a name of dots only ("..") is escaped whole, so `x/y` and `x_y`
    never share a directory and no name leaves `arms/`."""
    if arm.strip(".") == "":
        return "".join(f"%{b:02X}" for b in arm.encode()) or "%"
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in arm)


def arm_dir(run_dir: Path, arm: str, seed: int = 0) -> Path:
    """Where an (arm, seed) keeps its lease, checkpoint and kept weights."""
    return Path(run_dir) / ARMS / arm_dirname(arm) / f"seed-{seed}"


def rung_dir(unit_dir: Path, rung: int) -> Path:
    """Where a ladder's rung k cools down, inside its (arm, seed) directory."""
    return unit_dir / f"rung-{rung}"


def is_lower_rung(row: dict[str, Any]) -> bool:
    """A ladder's rung below its largest: a budget point, not the (arm, seed)'s result."""
    rung, ladder = row.get("rung"), row.get("ladder")
    return rung is not None and ladder is not None and rung < ladder - 1


def results(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """THE rule for which rows are results: per (arm, seed), its latest row that is not a
    ladder's lower rung (a re-run replaces an earlier row). Keys in first-seen order."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if not is_lower_rung(row):
            out[(row["arm"], row.get("seed", 0))] = row
    return out


def result_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(results(rows).values())


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


def read_json(path: Path) -> dict[str, Any]:
    """A run directory's JSON file ({} when absent: an older or partial run directory)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_spec(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / SPEC)


def default_run_dir(name: str) -> Path:
    """runs/NAME, with NAME one escaped path component: a spec named by an absolute path
    or with slashes still lands under runs/."""
    return Path("runs") / arm_dirname(name)


def claim_run_dir(path: Path, ablation: str) -> None:
    """A run directory belongs to one ablation: refuse to run another one into it."""
    ensure_run_dir(path)
    owner = read_spec(path).get("ablation") or next((r.get("ablation") for r in read_rows(path / RESULTS)
                                                     if r.get("ablation")), None)
    if owner is not None and owner != ablation:
        raise ValueError(f"{path} holds a run of ablation {owner!r}; running {ablation!r} there would mix the two "
                         "in one report: give another --out")
