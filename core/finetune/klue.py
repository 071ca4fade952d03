"""KLUE's task layouts, read from one file and split into train/dev/test by a hash.

- KLUE-NER (`.tsv`): `##` comment lines (one `## GUID<TAB>tagged text` per sentence), then
  one `CHAR<TAB>TAG` line per character, spaces included, a blank line between sentences.
  Tags are character-level BIO (B-PS, I-PS, ..., O).
- KLUE-NLI (`.json`): a list of objects with `premise`, `hypothesis` and `gold_label`
  (entailment, neutral or contradiction).

The split is a hash, not a position, so it does not depend on the file's order and an
example keeps its split when others are added: sha1 of the sentence (NER) or of the
premise (NLI; every hypothesis written for one premise lands in the same split, so a
test premise was never seen in training), first 8 hex digits mod 10: 0-1 test, 2 dev,
3-9 train (about 20 / 10 / 70 %).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.data.formats import decode_utf8
from core.finetune.tagging import OUTSIDE, tag_names
from core.finetune.tasks import SPLITS, Example, Task, TaskError, TaskSpec

SPLIT_RULE = "sha1(sentence or premise)[:8] mod 10: 0-1 test, 2 dev, 3-9 train"
NLI_KEYS = ("premise", "hypothesis", "gold_label")


def split_of(key: str) -> str:
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "test" if bucket < 2 else "dev" if bucket == 2 else "train"


def _text(path: Path) -> str:
    if not path.is_file():
        raise TaskError(f"task file {path} not found (the built-in KLUE tasks are read from "
                        "$BERT_ABLATE_TASK_DATA/klue, default ../shared/data/klue beside the project)")
    try:
        return decode_utf8(path.read_bytes())
    except UnicodeDecodeError as err:
        raise TaskError(f"{path}: not UTF-8 (byte {err.start}); re-save it as UTF-8") from None


def read_ner(path: Path) -> list[tuple[str, list[str]]]:
    """(sentence, tag per character) for every sentence of a KLUE-NER file."""
    sentences, chars, tags = [], [], []
    lines = _text(path).split("\n")
    for lineno, line in enumerate([*lines, ""], 1):
        line = line.rstrip("\r")
        if line.startswith("##"):
            continue
        if not line:
            if chars:
                sentences.append(("".join(chars), tags))
                chars, tags = [], []
            continue
        char, tab, tag = line.rpartition("\t")
        if not tab or len(char) != 1:
            raise TaskError(f"{path}:{lineno}: expected CHAR<TAB>TAG (one character, a tab, a BIO tag), got "
                            f"{line[:40]!r}; is this KLUE-NER's layout?")
        if tag != OUTSIDE and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise TaskError(f"{path}:{lineno}: tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
        chars.append(char)
        tags.append(tag)
    if not sentences:
        raise TaskError(f"{path}: no tagged sentences (expected CHAR<TAB>TAG lines, a blank line between "
                        "sentences: KLUE-NER's layout)")
    return sentences


def read_nli(path: Path) -> list[dict]:
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path}: not JSON ({err.msg} at line {err.lineno}); expected KLUE-NLI's layout, a "
                        "list of objects with premise, hypothesis and gold_label") from None
    if not isinstance(data, list) or not data:
        raise TaskError(f"{path}: expected a non-empty JSON list of objects with premise, hypothesis and "
                        "gold_label (KLUE-NLI's layout)")
    for i, item in enumerate(data):
        missing = [k for k in NLI_KEYS if not isinstance(item, dict) or not isinstance(item.get(k), str)]
        if missing:
            raise TaskError(f"{path}: entry {i} has no {', '.join(missing)} (text fields of KLUE-NLI's layout)")
    return data


def _split(path: Path, keyed: list[tuple[str, Example]]) -> dict[str, list[Example]]:
    return split_groups(path, [(key, [ex]) for key, ex in keyed], "examples", f"the hash split ({SPLIT_RULE})")


def split_groups(path: Path, groups: list[tuple[str, list]], unit: str, under: str) -> dict[str, list]:
    """Train / dev / test by a hash of each group's key (`split_of`): a group's items (one KLUE
    example, or every question of a KorQuAD article) land on one side together."""
    splits: dict[str, list] = {s: [] for s in SPLITS}
    for key, items in groups:
        splits[split_of(key)].extend(items)
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise TaskError(f"{path}: {len(groups)} {unit} leave the {', '.join(empty)} split empty under {under}; "
                        f"give a file with more {unit}")
    return splits


def load_klue_task(spec: TaskSpec) -> Task:
    path = Path(spec.file)
    if spec.reader == "klue-ner":
        sentences = read_ner(path)
        classes = tag_names(t[2:] for _, tags in sentences for t in tags if t != OUTSIDE)
        index = {c: i for i, c in enumerate(classes)}
        keyed = [(text, Example(text, None, tuple(index[t] for t in tags))) for text, tags in sentences]
        return Task(spec, _split(path, keyed), classes)
    classes = list(spec.label_names)
    keyed = []
    for i, item in enumerate(read_nli(path)):
        label = item["gold_label"].strip()
        if label not in spec.label_names:
            raise TaskError(f"{path}: entry {i} has gold_label {label!r}; expected one of {', '.join(classes)}")
        keyed.append((item["premise"], Example(item["premise"], item["hypothesis"], classes.index(label))))
    return Task(spec, _split(path, keyed), classes)
