"""Extractive (span) question answering, SQuAD-style, scored as KorQuAD's official evaluator does.

Windows (BERT's `run_squad`): each example is `[CLS] question [SEP] passage-window [SEP]`.
A question keeps at most `max_query_len` pieces, and at most half the window (longer ones
are cut to that, as BERT does, and counted: `SpanEncoded.truncated`); a passage longer than
what is left is cut into windows that start `doc_stride` pieces apart (0: half of what is
left, so consecutive windows overlap by half). Windows are cut on the passage's
SentencePiece pieces, and every piece keeps its character span in the original passage,
so that an answer is a character span of the passage and a predicted span goes back to
the passage's own text. A window that holds the whole gold answer is trained to point at
it; the others at [CLS] (BERT's SQuAD 1.1 rule).

Decoding (HF's `postprocess_qa_predictions`): in every window of a question, the
best-scoring spans (start logit + end logit) with the end at or after the start, at most
`max_answer_len` pieces long and inside the passage; the `n_best` best over all windows are
the question's candidates (a text found in several windows keeps its best score) and the
first is its answer. Every window competes, so an answer is found whenever one window holds
it whole (BERT's older rule, answering a piece only from the window where it has the most
context, can lose an answer that only a window where it sits near the edge holds whole). A piece straddling the gold answer's edge
("이순신" inside "▁이순신은") cannot be cut: `span_ceiling` scores the gold pieces
themselves, the best any model can do with this tokenizer and these windows.

The metric is KorQuAD 1.0's `evaluate-v1.0.py` (korquad.github.io, itself SQuAD v1.1's with
Korean changes): both texts normalised (the quotes ' " ‘ ’ and the brackets 《 》 < > 〈 〉 ( )
replaced by a space, lower-cased, ASCII punctuation removed, whitespace collapsed);
exact match is the equality of the normalised texts; F1 is over characters: the
normalised texts' characters with the spaces dropped, counted as multisets (no article
removal, unlike SQuAD's English one). Each question scores its best over the gold answers;
a question without a prediction scores 0. EM and F1 are means over questions on 0-100 (as
the official script prints them), with a 95% percentile-bootstrap interval over questions.
The task, its split, the chance level and the predictions file:
docs/downstream-and-export.md#span-question-answering-korquad.
"""
from __future__ import annotations

import hashlib
import json
import math
import string
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data import CLS, SEP, Tokenizer
from core.files import atomic_write_bytes
from core.finetune.encode import Encoded
from core.finetune.metrics import Score
from core.finetune.squad import QAExample

METRICS = ("exact_match", "f1")      # what a span-QA task reports, F1 first for dev selection below
PRIMARY = "f1"
BOOTSTRAP_SAMPLES = 1000
PREDICTIONS = "predictions.json"
_SPACED = "'\"《》<>〈〉()‘’"           # the official remove_(): each replaced by a space
_PUNCTUATION = frozenset(string.punctuation)


# -- the official metric ---------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """KorQuAD 1.0's normalize_answer: white_space_fix(remove_punc(lower(remove_(text))))."""
    for ch in _SPACED:
        text = text.replace(ch, " ")
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def char_f1(prediction: str, gold: str) -> float:
    """F1 over the characters of the normalised texts, spaces dropped; 0 when none is shared
    (so an empty prediction scores 0, as does an empty gold answer)."""
    pred = list("".join(normalize_answer(prediction).split()))
    ref = list("".join(normalize_answer(gold).split()))
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str | None, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of one question on 0-100: the best over its gold answers; no prediction scores 0."""
    if prediction is None:
        return 0.0, 0.0
    return (100.0 * max(exact_match(prediction, g) for g in golds),
            100.0 * max(char_f1(prediction, g) for g in golds))


@dataclass
class SpanScores:
    """EM and F1 with their intervals, and every question's pair (for paired comparisons)."""
    scores: dict[str, Score]
    per_question: dict[str, list[float]]   # metric -> one value per question, on 0-100
    ids: list[str]

    @property
    def ids_key(self) -> str:
        """The questions scored, in order: two rows pair question by question only when these agree."""
        return ids_key(self.ids)


def ids_key(ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()[:16]


def bootstrap_mean(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of a mean over the questions (the unit sampled)."""
    if not len(values):
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(values), size=(BOOTSTRAP_SAMPLES, len(values)))
    low, high = np.percentile(values[idx].mean(1), [2.5, 97.5])
    return float(low), float(high)


def squad_scores(predictions: Mapping[str, str], examples: Sequence[QAExample], seed: int = 0) -> SpanScores:
    """KorQuAD's exact match and F1 of `predictions` ({question id: answer text}) on `examples`."""
    pairs = np.asarray([question_scores(predictions.get(ex.id), ex.answer_texts) for ex in examples],
                       dtype=float).reshape(-1, 2)
    scores = {}
    for k, metric in enumerate(METRICS):
        values = pairs[:, k]
        mean = float(values.mean()) if len(values) else math.nan
        scores[metric] = Score(metric, mean, len(values), *bootstrap_mean(values, seed))
    return SpanScores(scores, {m: pairs[:, k].tolist() for k, m in enumerate(METRICS)}, [ex.id for ex in examples])


def first_words_baseline(train: Sequence[QAExample], test: Sequence[QAExample]) -> dict[str, float]:
    """The chance level: EM and F1 of always answering the passage's first k words, k the
    mean length in words of the training answers (rounded, at least 1)."""
    lengths = [len(ex.answers[0][0].split()) for ex in train]
    k = max(1, round(sum(lengths) / len(lengths))) if lengths else 1
    guess = {ex.id: " ".join(ex.context.split()[:k]) for ex in test}
    return {m: s.value for m, s in squad_scores(guess, test).scores.items()}


def write_predictions(predictions: Mapping[str, str], path: str | Path) -> Path:
    """{question id: answer text} as UTF-8 JSON: the official evaluator's prediction file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(dict(predictions), ensure_ascii=False, indent=1).encode("utf-8"))
    return path


# -- windows -------------------------------------------------------------------------------------------------
@dataclass
class SpanEncoded(Encoded):
    """Windows (rows: ids, types, labels = (start, end) positions, (0, 0) at [CLS] when the
    window does not hold the answer) and what maps them back to the questions."""
    question: list[int] = field(default_factory=list)        # per window: its question
    first: list[int] = field(default_factory=list)           # per window: position of its first passage piece
    piece0: list[int] = field(default_factory=list)          # per window: that piece's index in the passage
    length: list[int] = field(default_factory=list)          # per window: its passage pieces
    examples: list[QAExample] = field(default_factory=list)  # per question
    spans: list[list[tuple[int, int]]] = field(default_factory=list)   # per question: each passage piece's
    #                                               (first non-space character, end) in the passage
    gold_pieces: list[list[tuple[int, int] | None]] = field(default_factory=list)  # per question and answer
    truncated: list[tuple[str, int]] = field(default_factory=list)   # (id, pieces) of questions cut short
    query_limit: int = 0                                     # pieces a question keeps
    window: int = 0                                          # tokens per window, specials included

    def head(self, n: int) -> SpanEncoded:
        """The windows of the first n questions."""
        keep = [w for w, q in enumerate(self.question) if q < n]
        pick = lambda xs: [xs[w] for w in keep]  # noqa: E731
        return SpanEncoded(pick(self.ids), pick(self.types), pick(self.labels), question=pick(self.question),
                           first=pick(self.first), piece0=pick(self.piece0), length=pick(self.length),
                           examples=self.examples[:n], spans=self.spans[:n], gold_pieces=self.gold_pieces[:n],
                           truncated=[t for t in self.truncated if t[0] in {e.id for e in self.examples[:n]}],
                           query_limit=self.query_limit, window=self.window)


def piece_spans(offsets: Sequence[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Each piece's (first non-space character, end): a word-initial piece's span holds the
    space before it, which belongs to no answer. A piece that covers only spaces, or
    nothing (an NFKC expansion), has begin == end."""
    out = []
    for begin, end in offsets:
        first = next((i for i in range(begin, end) if not text[i].isspace()), end)
        out.append((first, end))
    return out


def answer_pieces(spans: Sequence[tuple[int, int]], start: int, text: str) -> tuple[int, int] | None:
    """The first and last piece of the answer `text` at character `start`: the last piece
    starting at or before its first character, the first ending at or after its last."""
    a0 = start + len(text) - len(text.lstrip())
    a1 = start + len(text.rstrip())
    firsts = [i for i, (b, e) in enumerate(spans) if b < e and b <= a0]
    lasts = [i for i, (b, e) in enumerate(spans) if b < e and e >= a1]
    if not firsts or not lasts or lasts[0] < firsts[-1]:
        return None
    return firsts[-1], lasts[0]


def span_text(context: str, spans: Sequence[tuple[int, int]], first: int, last: int) -> str:
    """The passage's own text from piece `first` to piece `last`."""
    return context[spans[first][0]:spans[last][1]].strip()


def windows(n: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over n passage pieces (BERT's doc spans)."""
    out, start = [], 0
    while True:
        length = min(room, n - start)
        out.append((start, length))
        if start + length >= n:
            return out
        start += min(length, stride)


def encode_span_qa(examples: Sequence[QAExample], tokenizer: Tokenizer, max_length: int, type_ids: bool,
                   max_query_len: int = 64, doc_stride: int = 0) -> SpanEncoded:
    """Every question's windows (see the module docstring)."""
    limit = min(max_query_len, (max_length - 3) // 2)
    if limit < 1:
        raise ValueError(f"max_length={max_length} leaves no room for a question and a passage window")
    enc = SpanEncoded([], [], [], query_limit=limit, window=max_length)
    contexts = list(dict.fromkeys(ex.context for ex in examples))
    pieces = dict(zip(contexts, tokenizer.encode_with_offsets(contexts)))
    for q, (ex, query) in enumerate(zip(examples, tokenizer.encode([ex.question for ex in examples]))):
        if len(query) > limit:
            enc.truncated.append((ex.id, len(query)))
            query = query[:limit]
        ids, offsets = pieces[ex.context]
        spans = piece_spans(offsets, ex.context)
        enc.examples.append(ex)
        enc.spans.append(spans)
        gold = [answer_pieces(spans, start, text) for text, start in ex.answers]
        enc.gold_pieces.append(gold)
        room = max_length - 3 - len(query)
        stride = min(doc_stride or max(1, room // 2), room)
        cut = windows(len(ids), room, stride)
        head = [CLS, *query, SEP]
        for start, length in cut:
            enc.ids.append(head + ids[start:start + length] + [SEP])
            enc.types.append([0] * len(head) + [1 if type_ids else 0] * (length + 1))
            answer = gold[0]
            inside = answer is not None and start <= answer[0] and answer[1] < start + length
            enc.labels.append((len(head) + answer[0] - start, len(head) + answer[1] - start) if inside else (0, 0))
            enc.question.append(q)
            enc.first.append(len(head))
            enc.piece0.append(start)
            enc.length.append(length)
    return enc


def truncation_warning(task: str, split: str, enc: SpanEncoded, max_query_len: int) -> str | None:
    """One line for the questions cut to the query limit (None if none was)."""
    if not enc.truncated:
        return None
    qid, n = enc.truncated[0]
    longest = max(n for _, n in enc.truncated)
    limit = f"max_query_len={max_query_len}" + (f", but at most half of the {enc.window}-token window"
                                                 if enc.query_limit < max_query_len else "")
    return (f"{task} {split}: {len(enc.truncated)} of {len(enc.examples)} questions are longer than "
            f"{enc.query_limit} pieces ({limit}) and were cut to {enc.query_limit} (BERT's rule); the first: "
            f"{qid!r}, {n} pieces; the longest {longest}. Raise max_query_len (or max_length) to keep them whole")


def warn_truncated(task: str, split: str, enc: SpanEncoded, max_query_len: int) -> None:
    line = truncation_warning(task, split, enc, max_query_len)
    if line:
        warnings.warn(line, stacklevel=3)


# -- decoding ------------------------------------------------------------------------------------------------
def nbest(start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], enc: SpanEncoded,
          max_answer_len: int = 30, n_best: int = 20) -> list[list[tuple[float, str]]]:
    """Per question, its n best (score, text) candidates over all its windows, best first; a
    text found in several windows keeps its best score."""
    found: list[dict[str, float]] = [{} for _ in enc.examples]
    for w, q in enumerate(enc.question):
        spans, context = enc.spans[q], enc.examples[q].context
        first, p0, n = enc.first[w], enc.piece0[w], enc.length[w]
        s = np.asarray(start_logits[w], dtype=float)[first:first + n]
        e = np.asarray(end_logits[w], dtype=float)[first:first + n]
        content = np.asarray([b < end for b, end in spans[p0:p0 + n]])
        i, j = np.indices((n, n))
        valid = content[:, None] & content[None, :] & (j >= i) & (j - i < max_answer_len)
        score = np.where(valid, s[:, None] + e[None, :], -np.inf).ravel()
        k = min(n_best, int(valid.sum()))
        if k == 0:
            continue
        for flat in np.argpartition(-score, k - 1)[:k]:
            a, b = divmod(int(flat), n)
            text = span_text(context, spans, p0 + a, p0 + b)
            if text and score[flat] > found[q].get(text, -np.inf):
                found[q][text] = float(score[flat])
    return [sorted(((v, t) for t, v in f.items()), key=lambda x: -x[0])[:n_best] for f in found]


def decode(start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], enc: SpanEncoded,
           max_answer_len: int = 30, n_best: int = 20) -> dict[str, str]:
    """{question id: the best candidate's text} ("" when no window holds a valid span)."""
    best = nbest(start_logits, end_logits, enc, max_answer_len, n_best)
    return {ex.id: (c[0][1] if c else "") for ex, c in zip(enc.examples, best)}


def gold_logits(enc: SpanEncoded) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Logits of a model that points at the gold pieces in every window that holds them
    whole, and at nothing elsewhere."""
    starts, ends = [], []
    for ids, (a, b) in zip(enc.ids, enc.labels):
        s, e = np.full(len(ids), -10.0), np.full(len(ids), -10.0)
        if a or b:
            s[a], e[b] = 10.0, 10.0
        starts.append(s)
        ends.append(e)
    return starts, ends


def span_ceiling(enc: SpanEncoded) -> dict[str, float]:
    """EM and F1 of a model that always picks the gold answer's pieces (through the windows
    and the decoding): below 100 where a piece straddles an answer's edge, and 0 for a
    question that no window holds whole."""
    predictions = decode(*gold_logits(enc), enc, max_answer_len=max(enc.length, default=1), n_best=1)
    held = {enc.question[w] for w, label in enumerate(enc.labels) if label != (0, 0)}
    predictions = {ex.id: (predictions[ex.id] if q in held else "") for q, ex in enumerate(enc.examples)}
    return {m: s.value for m, s in squad_scores(predictions, enc.examples).scores.items()}
