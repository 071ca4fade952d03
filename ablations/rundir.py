"""The run directory: every file name in it, its rows, and the one rule for which rows are results.

    RUN_DIR/
      spec.json        the ablation as run: its arms, description, expected directions, GPU
                       budget and resolved options (the report reads these, never the catalogue)
      results.jsonl    one JSON line per finished (arm, seed) (training ablations)
      bench.jsonl      one JSON line per measured (variant, length) (bench ablations)
      speed.json       the arms' training steps timed side by side, round by round
      rates.json       --lr-search: each arm's chosen rate, why, and the search's losses
      lr-search/       --lr-search: the search points, a run directory of their own
      report.md, results.csv, bench.csv, *.png    rendered from the files above
      arms/ARM/seed-K/   an (arm, seed)'s lease while it trains, its checkpoint (with
                         --ladder: the stable-phase run's), then its kept final weights;
                         unit.json / result.json while torchrun's ranks train it
                         error.log: the traceback of its last failure (one line in its row)
      arms/ARM/seed-K/rung-k/   --ladder: rung k's cooldown, branched from the stable run
                                (branch.json: the stable run's progress at the branch)

ARM is the arm's name escaped so that two names never share a directory (`arm_dirname`).

Rows are appended, one line each, under an exclusive file lock in a single write, so
several processes (or machines on one shared file system) can write one run directory
without losing or duplicating rows; a reader skips a torn last line left by a killed
writer. Everything else is written atomically. Rows are typed (`ablations.rows`: `Row` in
results.jsonl, `BenchRow` in bench.jsonl): read as such here, written from them here.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ablations.rows import BenchRow, Row, RowError
from core.files import append_line, atomic_write_text, file_lock

RESULTS, BENCH, SPEC, REPORT = "results.jsonl", "bench.jsonl", "spec.json", "report.md"
RESULTS_CSV, BENCH_CSV = "results.csv", "bench.csv"
SPEED = "speed.json"    # every arm timed side by side after training (interleaved rounds)
ARMS = "arms"
SEARCH_DIR = "lr-search"  # --lr-search's points: a run directory of their own inside this one
RATES = "rates.json"      # --lr-search's choice per arm ({arm: {lr, why, search}}): the plan reads it
# what makes a directory a run directory: a run into a non-empty directory holding none of
# these would write its report.md, results.csv and plots over the user's files
RUN_MARKERS = (SPEC, RESULTS, BENCH, ARMS, SEARCH_DIR)
UNIT, RANK_RESULT = "unit.json", "result.json"  # a unit handed to torchrun's ranks, and rank 0's answer
BRANCH = "branch.json"  # in a rung's directory: the stable run's progress its cooldown branched from
ERROR_LOG = "error.log"  # in a unit's directory: the traceback of its last failed step (`--debug` prints it)

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


def is_lower_rung(row: Row) -> bool:
    """A ladder's rung below its largest: a budget point, not the (arm, seed)'s result."""
    return row.is_lower_rung


def results(rows: Iterable[Row]) -> dict[tuple[str, int], Row]:
    """THE rule for which rows are results: per (arm, seed), its latest row that is not a
    ladder's lower rung (a re-run replaces an earlier row). Keys in first-seen order."""
    out: dict[tuple[str, int], Row] = {}
    for row in rows:
        if not row.is_lower_rung:
            out[(row.arm, row.seed)] = row
    return out


def result_rows(rows: Iterable[Row]) -> list[Row]:
    return list(results(rows).values())


def ensure_run_dir(path: Path) -> None:
    """Create the run directory and prove it writable, with one line that names the fix. A
    directory that holds files but no run is refused, and so is a symbolic link inside it
    that leads outside it: nothing is written over a user's files or through a link."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a directory; give a directory (it is created if missing)")
    _refuse_foreign(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write the run directory {path}: {err.strerror or err}"
                         f"{f' ({err.filename})' if err.filename and str(err.filename) != str(path) else ''}; "
                         "choose a writable --out") from None
    check_contained(path)


def _refuse_foreign(path: Path) -> None:
    if not path.is_dir():
        return
    entries = sorted(p.name for p in path.iterdir() if not p.name.startswith((".write-test-", ".results.jsonl.lock")))
    if entries and not any(name in RUN_MARKERS for name in entries):
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise ValueError(f"--out {path} is not empty and holds no run ({shown}): a run there would write its "
                         "report.md, results.csv and plots over files of the same names; give a new or empty --out")


def check_contained(run_dir: Path) -> None:
    """No symbolic link inside the run directory may lead outside it: a run writes
    checkpoints, weights and leases into arms/, and a linked `arms/ARM/seed-K` would have
    them written over another directory's files. The directory itself may be a link."""
    root = Path(os.path.realpath(run_dir))
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            entry = Path(top) / name
            if entry.is_symlink() and not Path(os.path.realpath(entry)).is_relative_to(root):
                raise ValueError(f"{Path(run_dir) / entry.relative_to(root)} is a symbolic link to "
                                 f"{os.path.realpath(entry)}, outside the run directory; nothing is written through "
                                 "it: remove the link (or copy what it points to in its place)")


NAME_MAX = 255  # bytes in one path component on Linux and macOS file systems


def arm_path_problem(arm: str) -> str | None:
    """Why an arm's name cannot be its directory's name (None: it can), before anything trains."""
    escaped = arm_dirname(arm)
    if len(escaped.encode()) > NAME_MAX:
        return (f"its name is too long for a directory: escaped for the file system it takes "
                f"{len(escaped.encode())} bytes of at most {NAME_MAX} (each character outside A-Z a-z 0-9 _ . + = - "
                "takes 3 bytes per UTF-8 byte); shorten it")
    return None


def read_rows(path: Path, ablation: str | None = None) -> list[Row] | list[BenchRow]:
    """Every row that can be read as one: `Row`s, or `BenchRow`s from a bench.jsonl. A line
    that is not JSON (a row torn by a writer killed mid-write: rows are written whole, in one
    call), a row of the wrong shape, and a row of another ablation than `ablation` (a run
    directory holds one) are each skipped with a warning naming the file and line, never
    taken for a result."""
    if not path.is_file():
        return []
    schema = BenchRow if path.name == BENCH else Row
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{n} is a torn row or not JSON (a writer killed mid-write, or an edit); skipped",
                          stacklevel=2)
            continue
        problem = row_problem(row, ablation, results=path.name == RESULTS)
        if not problem:
            try:
                row = schema.from_json(row)
            except RowError as err:
                problem = str(err)
        if problem:
            warnings.warn(f"{path}:{n}: {problem}; skipped", stacklevel=2)
            continue
        rows.append(row)
    return rows


def read_bench(path: Path) -> list[BenchRow]:
    """The rows of a bench.jsonl (`read_rows`)."""
    return read_rows(path)


# fields a report computes with: a row whose value there is neither a number nor null is damaged
NUMERIC_FIELDS = ("eval_mlm_loss", "eval_mlm_acc", "eval_sentence_acc", "eval_nsp_acc", "eval_sop_acc",
                  "tokens_seen", "steps", "wall_s", "params_unique", "params_total", "tokens_per_s",
                  "infer_tokens_per_s", "peak_mem_bytes", "saved_bytes", "train_flops", "seq_len", "batch_size")


def row_problem(row: Any, ablation: str | None = None, results: bool = True) -> str | None:
    """What makes a row unreadable (None: nothing); `results`: a results row, which names its
    arm (a bench row names a variant instead)."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not a row (a JSON object)"
    if results:
        if not isinstance(row.get("arm"), str) or not row["arm"]:
            return "no arm name"
        if "seed" in row and (not isinstance(row["seed"], int) or isinstance(row["seed"], bool)):
            return f"seed {row['seed']!r} is not a whole number"
        if ablation is not None and row.get("ablation", ablation) != ablation:
            return f"a row of ablation {row.get('ablation')!r}, not of this run's {ablation!r}"
    for key in NUMERIC_FIELDS:
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{key} {value!r} is not a number"
    return None


def read_results(run_dir: Path) -> list[Row]:
    """The results rows of a run directory: those of the ablation its spec.json names."""
    return read_rows(Path(run_dir) / RESULTS, ablation=read_spec(run_dir).get("ablation"))


def append_row(path: Path, row: Row | BenchRow | dict[str, Any]) -> None:
    """Append one row as this version writes it (`row_version` first, then the row's keys in
    their order); a dict is read into the schema of its file first, and refused (`RowError`)
    where a reader would skip it."""
    if isinstance(row, Mapping):
        problem = row_problem(row, results=path.name != BENCH)
        if problem:
            raise RowError(f"not a row of {path.name}: {problem}")
        row = (BenchRow if path.name == BENCH else Row).from_json(row)
    append_line(path, json.dumps(row.stamped().to_json(), default=str))


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def read_json(path: Path) -> dict[str, Any]:
    """A run directory's JSON file ({} when absent: an older or partial run directory); a
    damaged one is refused in one line that says what is wrong."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is damaged ({_json_problem(err)}): {_REWRITE}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} is damaged (a JSON {type(value).__name__}, not an object): {_REWRITE}")
    return value


_REWRITE = "delete it; running the ablation into this directory again writes it anew, finished arms kept"


def _json_problem(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    return "not UTF-8 text"


def update_json(path: Path, entries: dict[str, Any]) -> None:
    """Merge `entries` into a JSON object file, under a lock: processes of one run (--shard,
    --arms) each add their own arms' entries without losing another's."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        write_text(path, json.dumps({**read_json(path), **entries}, indent=1, sort_keys=True))


def read_spec(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / SPEC)


def default_run_dir(name: str) -> Path:
    """runs/NAME, with NAME one escaped path component: a spec named by an absolute path
    or with slashes still lands under runs/."""
    return Path("runs") / arm_dirname(name)


def claim_run_dir(path: Path, ablation: str) -> None:
    """A run directory belongs to one ablation: refuse to run another one into it."""
    ensure_run_dir(path)
    owner = read_spec(path).get("ablation") or next((r.ablation for r in read_rows(path / RESULTS) if r.ablation),
                                                    None)
    if owner is not None and owner != ablation:
        raise ValueError(f"{path} holds a run of ablation {owner!r}; running {ablation!r} there would mix the two "
                         "in one report: give another --out")
