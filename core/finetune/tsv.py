"""Reading a task's TSV splits: found by name, strictly UTF-8 (a BOM dropped), every column checked."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from core.data.formats import decode_utf8
from core.finetune.klue import load_klue_task
from core.finetune.squad import load_squad_task
from core.finetune.tasks import _SPLIT_NAMES, SPLITS, Example, Task, TaskError, TaskSpec, parse_task


def find_split(spec: TaskSpec, split: str) -> Path:
    if not spec.directory.is_dir():
        raise TaskError(f"task {spec.name}: directory {spec.directory} not found (built-in tasks are read from "
                        f"$BERT_ABLATE_TASK_DATA/{spec.name}, default ../shared/data/{spec.name} beside the project)")
    if split in spec.files:
        path = spec.directory / spec.files[split]
        if not path.is_file():
            raise TaskError(f"task {spec.name}: {split} file {path} not found")
        return path
    files = sorted(p for p in spec.directory.iterdir() if p.suffix in (".tsv", ".txt") and p.is_file())
    for path in files:
        words = path.stem.lower().replace("-", "_").replace(".", "_").split("_")
        if any(w in _SPLIT_NAMES[split] for w in words):
            return path
    raise TaskError(f"task {spec.name}: no {split} file in {spec.directory} (a .tsv whose name contains "
                    f"{' or '.join(_SPLIT_NAMES[split])}; found: {', '.join(p.name for p in files) or 'none'}); "
                    f"name one with {split}=FILE")


def read_tsv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (line number, fields) of every non-blank row. Every row must have the
    header's field count: with QUOTE_NONE a tab inside a text field shifts the columns after
    it, and a shifted label would otherwise become a class of its own."""
    raw = path.read_bytes()
    try:
        text = decode_utf8(raw)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise TaskError(f"{path}: not UTF-8 (line {line}, byte {err.start}); re-save it as UTF-8") from None
    rows = [(line, r) for line, r in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t",
                                                          quoting=csv.QUOTE_NONE), 1) if any(c.strip() for c in r)]
    if not rows:
        raise TaskError(f"{path}: empty file (expected a header line and examples)")
    (_, header), body = rows[0], rows[1:]
    for line, row in body:
        if len(row) != len(header):
            raise TaskError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}; "
                            + ("a text field holds a tab (replace it with a space)" if len(row) > len(header)
                               else "fill in the missing fields"))
    return header, body


def _column(path: Path, header: list[str], role: str, name: str) -> int:
    if name not in header:
        raise TaskError(f"{path}: no column {name!r} ({role}={name}); columns: {', '.join(header)}")
    return header.index(name)


def _label(path: Path, line: int, spec: TaskSpec, value: str, classes: dict[str, int]) -> float | int:
    if spec.regression:
        try:
            return float(value)
        except ValueError:
            raise TaskError(f"{path}:{line}: column {spec.label!r} holds {value!r}, not a number "
                            f"(kind {spec.kind})") from None
    if value not in classes:
        raise TaskError(f"{path}:{line}: unknown label {value!r} in column {spec.label!r}; "
                        f"labels seen in training: {', '.join(sorted(classes))}")
    return classes[value]


def read_split(spec: TaskSpec, split: str, classes: dict[str, int]) -> list[Example]:
    path = find_split(spec, split)
    header, rows = read_tsv(path)
    cols = [_column(path, header, "text_a", spec.text_a), _column(path, header, "label", spec.label)]
    if spec.text_b:
        cols.append(_column(path, header, "text_b", spec.text_b))
    out = []
    for line, row in rows:
        label = _label(path, line, spec, row[cols[1]].strip(), classes)
        out.append(Example(row[cols[0]], row[cols[2]] if spec.text_b else None, label))
    if not out:
        raise TaskError(f"{path}: the {split} split is empty (a header but no examples)")
    return out


def _classes(spec: TaskSpec) -> dict[str, int]:
    """raw label -> index: the spec's named order, else the sorted labels of the train file."""
    if spec.regression:
        return {}
    if spec.label_names:
        return {raw: i for i, raw in enumerate(spec.label_names)}
    path = find_split(spec, "train")
    header, rows = read_tsv(path)
    col = _column(path, header, "label", spec.label)
    values = sorted({r[col].strip() for _, r in rows})
    return {v: i for i, v in enumerate(values)}


def load_task(spec: TaskSpec | str) -> Task:
    """A task's three splits, read and checked: `spec` is a TaskSpec or a spec string."""
    if isinstance(spec, str):
        spec = parse_task(spec)
    if spec.reader == "squad":
        return load_squad_task(spec)
    if spec.reader != "tsv":
        return load_klue_task(spec)
    classes = _classes(spec)
    splits = {s: read_split(spec, s, classes) for s in SPLITS}
    names = [spec.label_names.get(raw, raw) for raw in classes]
    return Task(spec, splits, names)
