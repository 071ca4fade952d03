"""Downstream tasks: TSV splits read into examples, with errors that name file and column.

A task is a kind, the columns that hold its texts and label, and train/dev/test files.
Built in: `korsts` (pair regression, score 0..5) and `question_pair` (pair classification;
the source's is_duplicate 0 means SAME meaning, so classes are named, not numbered).
Anything else: `tsv:DIR:text_a=COL,text_b=COL,label=COL,kind=KIND`.
KLUE's layouts (`core.finetune.klue`): `klue-ner` (token classification, entity F1) and
`klue-nli` (three-way pair classification) on ../shared/data/klue, and `klue-ner:FILE`,
`klue-nli:FILE` for any file in the same layout; one file is split into train/dev/test by
a hash (`core.finetune.klue.split_of`).
Span question answering (`core.finetune.squad`, `core.finetune.span_qa`): `korquad` (KorQuAD
1.0's dev set, split by article) and `korquad:FILE` for any file in SQuAD's JSON layout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.registry import unknown_name_error

KINDS = ("classification", "pair-classification", "pair-regression", "token-classification", "span-qa")
KLUE_FILES = {"klue-ner": "klue-ner-v1.1_dev_part1.tsv", "klue-nli": "klue-nli-v1.1_dev_part1.json"}
SQUAD_FILES = {"korquad": "korquad/KorQuAD_v1.0_dev.json"}   # span QA in SQuAD's JSON layout
BUILTIN_TASKS = ["korsts", "question_pair", *KLUE_FILES, *SQUAD_FILES, "klue-ner:FILE", "klue-nli:FILE",
                 "korquad:FILE", "tsv:DIR:text_a=...,label=...,kind=..."]
SPLITS = ("train", "dev", "test")
_SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test",)}
SHARED_DATA_ENV = "BERT_ABLATE_TASK_DATA"   # where the built-in tasks' folders live


class TaskError(ValueError):
    pass


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: float | int | tuple[int, ...]  # class index, a score for regression, or a tag per character


@dataclass
class TaskSpec:
    name: str
    directory: Path
    kind: str
    text_a: str
    text_b: str | None
    label: str
    label_names: dict[str, str] = field(default_factory=dict)   # raw value -> class name (fixed order)
    files: dict[str, str] = field(default_factory=dict)         # split -> file name (else found by name)
    reader: str = "tsv"           # tsv (a file per split), or klue-ner | klue-nli | squad (one file, split by hash)
    file: Path | None = None      # the one file a KLUE- or SQuAD-layout task is read from

    @property
    def regression(self) -> bool:
        return self.kind.endswith("regression")

    @property
    def tagging(self) -> bool:
        return self.kind == "token-classification"

    @property
    def span(self) -> bool:
        """Extractive question answering: a start and an end piece in the passage."""
        return self.kind == "span-qa"


@dataclass
class Task:
    spec: TaskSpec
    splits: dict[str, list[Example]]
    classes: list[str]            # class names by index ([] for regression)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_labels(self) -> int:
        return 1 if self.spec.regression else 2 if self.spec.span else len(self.classes)


def _default_root() -> Path:
    env = os.environ.get(SHARED_DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def builtin_spec(name: str, root: str | Path | None = None) -> TaskSpec:
    root = Path(root) if root else _default_root()
    if name == "korsts":
        return TaskSpec("korsts", root / "korsts", "pair-regression", "sentence1", "sentence2", "score")
    if name == "question_pair":
        # songys/Question_pair: is_duplicate 0 = the same meaning, 1 = different
        return TaskSpec("question_pair", root / "question_pair", "pair-classification", "question1", "question2",
                        "is_duplicate", label_names={"1": "different", "0": "same"})
    if name in KLUE_FILES:
        return klue_spec(name, root / "klue" / KLUE_FILES[name], name)
    if name in SQUAD_FILES:
        return squad_spec(root / SQUAD_FILES[name], name)
    raise unknown_name_error("task", name, BUILTIN_TASKS)


def klue_spec(reader: str, path: Path, name: str | None = None) -> TaskSpec:
    """A task in KLUE-NER's or KLUE-NLI's layout, read from one file; named for the file
    (as a tsv: task is named for its directory) unless it is the built-in one."""
    path = Path(path)
    name = name or path.stem
    if reader == "klue-ner":
        return TaskSpec(name, path.parent, "token-classification", "text", None, "tags", reader=reader, file=path)
    return TaskSpec(name, path.parent, "pair-classification", "premise", "hypothesis", "gold_label",
                    label_names={c: c for c in ("entailment", "neutral", "contradiction")}, reader=reader, file=path)


def squad_spec(path: Path, name: str | None = None) -> TaskSpec:
    """A span-QA task in SQuAD's JSON layout (KorQuAD 1.0's), read from one file and split by
    article (`core.finetune.squad`); named for the file unless it is the built-in one."""
    path = Path(path)
    return TaskSpec(name or path.stem, path.parent, "span-qa", "question", "context", "answers", reader="squad",
                    file=path)


def parse_task(text: str, root: str | Path | None = None) -> TaskSpec:
    """'korsts', 'question_pair', 'klue-ner', 'klue-nli', 'korquad', 'klue-ner:FILE',
    'klue-nli:FILE', 'korquad:FILE' or 'tsv:DIR:text_a=s1,text_b=s2,label=y,kind=pair-classification'."""
    reader, colon, path = text.partition(":")
    if colon and reader in KLUE_FILES:
        if not path:
            raise TaskError(f"task {text!r}: expected {reader}:FILE (a file in {reader.upper()}'s layout)")
        return klue_spec(reader, Path(path))
    if colon and reader in SQUAD_FILES:
        if not path:
            raise TaskError(f"task {text!r}: expected {reader}:FILE (a JSON file in SQuAD's layout, as KorQuAD 1.0's)")
        return squad_spec(Path(path))
    if not text.startswith("tsv:"):
        return builtin_spec(text, root)
    directory, sep, options = text[4:].rpartition(":")
    if not sep or not directory:
        raise TaskError(f"task {text!r}: expected tsv:DIR:text_a=COL,text_b=COL,label=COL,kind=KIND")
    keys = ("text_a", "text_b", "label", "kind", "train", "dev", "test")
    fields: dict[str, str] = {}
    for part in filter(None, options.split(",")):
        key, eq, value = part.partition("=")
        if not eq or key not in keys:
            raise unknown_name_error(f"option in task {text!r}:", key, keys)
        fields[key] = value
    kind = fields.get("kind", "pair-classification" if "text_b" in fields else "classification")
    if kind not in KINDS:
        raise unknown_name_error("task kind", kind, KINDS)
    if kind == "token-classification":
        raise TaskError(f"task {text!r}: token classification reads character-tagged sentences, not TSV "
                        "columns; convert the file to KLUE-NER's layout and use klue-ner:FILE")
    if kind == "span-qa":
        raise TaskError(f"task {text!r}: span question answering reads SQuAD's JSON layout, not TSV columns; "
                        "use korquad:FILE")
    for need in ("text_a", "label") + (("text_b",) if kind.startswith("pair") else ()):
        if need not in fields:
            raise TaskError(f"task {text!r} needs {need}=COLUMN (kind {kind})")
    files = {s: fields[s] for s in SPLITS if s in fields}
    return TaskSpec(Path(directory).name or directory, Path(directory), kind, fields["text_a"],
                    fields.get("text_b"), fields["label"], files=files)


def split_tasks(text: str) -> list[str]:
    """'korsts,tsv:D:text_a=a,label=y,question_pair' -> the three specs: a comma starts a new
    task unless what follows is one of a tsv spec's key=value options."""
    out: list[str] = []
    for piece in filter(None, text.split(",")):
        if out and out[-1].startswith("tsv:") and "=" in piece and not piece.startswith("tsv:"):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out
