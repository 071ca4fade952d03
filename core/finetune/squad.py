"""SQuAD's JSON layout (KorQuAD 1.0's), read, checked and split by article.

The layout: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}`, where `answer_start` is a character offset
into `context`. Every question needs at least one answer (SQuAD 2.0's unanswerable
questions are not this task) and a unique id (predictions are keyed by it).

One file is split into train / dev / test by article, never by paragraph or question, so
that no passage of a test article was seen in training: the KLUE tasks' hash rule
(`core.finetune.klue.split_of`) applied to the article's title (its first passage when it
has no title). On KorQuAD 1.0's public dev set (140 articles, 5,774 questions) that gives
train 95 articles / 3,617 questions, dev 11 / 424, test 34 / 1,733 (`split_counts`).

The file is read as it is (KorQuAD's licence, CC BY-ND 2.0 KR, asks that it be kept
unmodified): the split is made in code, every time, and `write_split` writes a split's
articles, unchanged, for the official evaluator to read beside this project's predictions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.finetune.klue import SPLIT_RULE, split_groups, split_of
from core.finetune.klue import _text as _klue_text
from core.finetune.tasks import SPLITS, Task, TaskError, TaskSpec, parse_task

LAYOUT = ('{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers": '
          '[{"text", "answer_start"}]}]}]}]}')
ARTICLE_RULE = f"by article: {SPLIT_RULE.replace('sentence or premise', 'the article title')}"


@dataclass(frozen=True)
class QAExample:
    """One question on one passage, with its gold answers (text, character offset)."""
    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    article: str = ""             # the article's title: what the split is keyed on

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


def _text(path: Path) -> str:
    if not path.is_file():
        raise TaskError(f"task file {path} not found (the built-in korquad is read from "
                        "$BERT_ABLATE_TASK_DATA/korquad, default ../shared/data/korquad beside the project)")
    return _klue_text(path)


def _shape_error(path: Path, where: str, what: str) -> TaskError:
    return TaskError(f"{path}: not SQuAD-shaped: {where} {what}; expected {LAYOUT} (KorQuAD 1.0's layout)")


def _list(path: Path, value, where: str, what: str) -> list:
    if not isinstance(value, list):
        raise _shape_error(path, where, f"is {_json_type(value)}, not a list of {what}")
    return value


def _str(path: Path, obj: dict, key: str, where: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise _shape_error(path, where, f"has no {key!r} string" if isinstance(obj, dict) else
                           f"is {_json_type(obj)}, not an object")
    return value


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def read_squad(path: Path) -> list[tuple[str, list[QAExample]]]:
    """(split key, questions) per article of a SQuAD-layout file, every field checked; one
    line for the first problem of shape, and for answers whose offset does not point at their
    text (how many, and the first)."""
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path}: not JSON ({err.msg} at line {err.lineno}); expected SQuAD's layout "
                        f"{LAYOUT}") from None
    if not isinstance(data, dict) or "data" not in data:
        raise _shape_error(path, "the top level", f"is {_json_type(data)} without a 'data' list")
    articles, seen, misplaced = [], set(), []
    for a, article in enumerate(_list(path, data["data"], "'data'", "articles")):
        where = f"data[{a}]"
        if not isinstance(article, dict):
            raise _shape_error(path, where, f"is {_json_type(article)}, not an article object")
        title = article.get("title")
        if title is not None and not isinstance(title, str):
            raise _shape_error(path, where, "has a 'title' that is not a string")
        questions = []
        for p, paragraph in enumerate(_list(path, article.get("paragraphs"), f"{where}.paragraphs", "paragraphs")):
            at = f"{where}.paragraphs[{p}]"
            context = _str(path, paragraph, "context", at)
            for q, qa in enumerate(_list(path, paragraph.get("qas"), f"{at}.qas", "questions")):
                qat = f"{at}.qas[{q}]"
                qid, question = _str(path, qa, "id", qat), _str(path, qa, "question", qat)
                if qid in seen:
                    raise _shape_error(path, qat, f"repeats the id {qid!r} (predictions are keyed by question id)")
                seen.add(qid)
                answers = _list(path, qa.get("answers"), f"{qat}.answers", "answers")
                if not answers:
                    raise _shape_error(path, qat, f"(id {qid!r}) has no answers (SQuAD 2.0's unanswerable "
                                                  "questions are not extractive QA)")
                gold = []
                for k, answer in enumerate(answers):
                    text = _str(path, answer, "text", f"{qat}.answers[{k}]")
                    start = answer.get("answer_start")
                    if isinstance(start, bool) or not isinstance(start, int):
                        raise _shape_error(path, f"{qat}.answers[{k}]", "has no integer 'answer_start'")
                    if not text.strip():
                        raise _shape_error(path, f"{qat}.answers[{k}]", f"(id {qid!r}) has an empty answer text")
                    if not 0 <= start <= len(context) - len(text) or context[start:start + len(text)] != text:
                        misplaced.append((qid, qat, text, start, context[max(start, 0):max(start, 0) + len(text)]))
                    gold.append((text, start))
                questions.append(QAExample(qid, question, context, tuple(gold), title or ""))
        key = title if title else next((ex.context for ex in questions), f"article {a}")
        articles.append((key, questions))
    if misplaced:
        qid, where, text, start, found = misplaced[0]
        raise TaskError(f"{path}: {len(misplaced)} answer(s) whose answer_start does not point at their text; "
                        f"the first: question {qid!r} ({where}), answer {text!r} at {start} where the context "
                        f"reads {found!r}")
    if not seen:
        raise TaskError(f"{path}: no questions (expected SQuAD's layout {LAYOUT})")
    return articles


def split_articles(path: Path, articles: list[tuple[str, list[QAExample]]]) -> dict[str, list[QAExample]]:
    """Train / dev / test by a hash of each article's key: every question of an article on one side."""
    return split_groups(path, articles, "articles", f"the split {ARTICLE_RULE}")


def load_squad_task(spec: TaskSpec) -> Task:
    path = Path(spec.file)
    return Task(spec, split_articles(path, read_squad(path)), [])


def split_counts(task: str | TaskSpec) -> dict[str, tuple[int, int]]:
    """(articles, questions) per split of a SQuAD-layout task."""
    spec = parse_task(task) if isinstance(task, str) else task
    counts = {s: [0, 0] for s in SPLITS}
    for key, questions in read_squad(Path(spec.file)):
        side = counts[split_of(key)]
        side[0] += 1
        side[1] += len(questions)
    return {s: (a, q) for s, (a, q) in counts.items()}


def write_split(task: str | TaskSpec, split: str, out: str | Path) -> Path:
    """The articles of one split, as they are in the file (its other keys kept), in SQuAD's
    layout: what KorQuAD's official `evaluate-v1.0.py` reads beside a `predictions.json`
    (with the whole file it would count every question of the other splits as unanswered)."""
    spec = parse_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise TaskError(f"split {split!r}: choose from {', '.join(SPLITS)}")
    path = Path(spec.file)
    read_squad(path)  # checked first
    data = json.loads(_text(path))
    kept = []
    for a, article in enumerate(data["data"]):
        questions = [qa for p in article["paragraphs"] for qa in p["qas"]]
        key = article.get("title") or next((p["context"] for p in article["paragraphs"] if p["qas"]), f"article {a}")
        if questions and split_of(key) == split:
            kept.append(article)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**data, "data": kept}, ensure_ascii=False), encoding="utf-8")
    return out
