"""Token classification on character-level BIO tags (KLUE-NER's layout), scored on the
original characters.

SentencePiece pieces do not line up with the characters an entity is tagged on, so the
model is trained and read out per piece and scored per character:
- a piece is labelled with the tag of its first non-space character (pieces that cover
  only spaces, or nothing, as NFKC expansions do, carry no label and are not trained);
- a prediction goes back to characters through the pieces' character offsets: the
  piece's first non-space character takes the piece's tag, its other characters continue
  it (I-X, or O), and a character no piece speaks for (a space between words) continues
  an entity only when the characters on both sides belong to it;
- the score is seqeval's entity-level F1 on those characters: an entity counts only when
  its type and its whole span are right.
Where a gold entity ends inside a piece ("이순신" in the piece "이순신은") the piece cannot
express it: `alignment_ceiling` is the F1 that the gold tags themselves reach through the
alignment, the best any model can score with this tokenizer.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from core.data import CLS, SEP, Tokenizer
from core.finetune.encode import Encoded
from core.finetune.metrics import Score
from core.finetune.tasks import Example
from core.model import IGNORE_INDEX as IGNORE  # a piece without a label: never trained on, never read out

OUTSIDE = "O"
BOOTSTRAP_SAMPLES = 1000


def tag_names(types: Iterable[str]) -> list[str]:
    """O, then B-X and I-X for every entity type, sorted: a fixed class order."""
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(set(types)) for p in ("B", "I")]


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) of every entity in a BIO sequence; an I-X that does not continue
    an X starts one (seqeval's and conlleval's convention)."""
    found, start, kind = set(), None, None
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, _, t = tag.partition("-")
        if start is not None and (prefix != "I" or t != kind):
            found.add((kind, start, i))
            start = kind = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, t
    return found


def _counts(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence: [true positives, predicted entities, gold entities]."""
    rows = []
    for p, g in zip(pred, gold):
        pe, ge = entities(p), entities(g)
        rows.append((len(pe & ge), len(pe), len(ge)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _f1(tp: np.ndarray, n_pred: np.ndarray, n_gold: np.ndarray) -> np.ndarray:
    denom = n_pred + n_gold
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def entity_f1(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], seed: int = 0) -> Score:
    """Micro-averaged entity F1 (seqeval's default) with a 95% percentile-bootstrap
    interval over sentences (the unit that was sampled); n is the number of sentences."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted sentences for {len(gold)} gold ones")
    c = _counts(pred, gold)
    value = float(_f1(*c.sum(0)))
    if not len(c):
        return Score("f1", float("nan"), 0, float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(c), size=(BOOTSTRAP_SAMPLES, len(c)))
    boot = _f1(*c[idx].sum(1).T)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Score("f1", value, len(c), float(low), float(high))


# -- the alignment -----------------------------------------------------------------------------
def piece_labels(tags: Sequence[int], offsets: Sequence[tuple[int, int]], text: str) -> list[int]:
    """Each piece's label: the tag of its first non-space character (IGNORE if it has none)."""
    out = []
    for begin, end in offsets:
        first = next((i for i in range(begin, end) if not text[i].isspace()), None)
        out.append(IGNORE if first is None else int(tags[first]))
    return out


def character_tags(piece_tags: Sequence[int], offsets: Sequence[tuple[int, int]], text: str,
                   classes: Sequence[str]) -> list[str]:
    """Tags per character of `text` from one tag per piece (IGNORE pieces say nothing)."""
    chars: list[str | None] = [None] * len(text)
    for tag, (begin, end) in zip(piece_tags, offsets):
        if tag == IGNORE:
            continue
        name = classes[tag]
        inner = OUTSIDE if name == OUTSIDE else "I-" + name[2:]
        first = True
        for i in range(begin, end):
            if text[i].isspace() and first:
                continue  # the space a word-initial piece carries belongs to the gap before it
            chars[i], first = (name if first else inner), False
    return _fill_gaps(chars)


def _fill_gaps(chars: list[str | None]) -> list[str]:
    """A character no piece tagged continues an entity only if both neighbours are in it."""
    out = list(chars)
    for i, tag in enumerate(chars):
        if tag is not None:
            continue
        before = next((out[j] for j in range(i - 1, -1, -1) if out[j] is not None), OUTSIDE)
        after = next((chars[j] for j in range(i + 1, len(chars)) if chars[j] is not None), OUTSIDE)
        same = before != OUTSIDE and after.startswith("I-") and after[2:] == before[2:]
        out[i] = "I-" + before[2:] if same else OUTSIDE
    return out  # type: ignore[return-value]


def alignment_ceiling(gold: Sequence[Sequence[int]], offsets: Sequence[Sequence[tuple[int, int]]],
                      texts: Sequence[str], classes: Sequence[str]) -> float:
    """The entity F1 of the gold tags sent through the pieces and back: 1.0 when every
    entity starts and ends on piece boundaries, less where pieces straddle them."""
    back = [character_tags(piece_labels(g, o, t), o, t, classes) for g, o, t in zip(gold, offsets, texts)]
    return entity_f1(back, [[classes[i] for i in g] for g in gold]).value


# -- encoding and read-out ----------------------------------------------------------------------
def encode_tagged(examples: list[Example], tokenizer: Tokenizer, max_length: int) -> Encoded:
    """[CLS] pieces [SEP] with a label per piece (IGNORE on the specials); pieces beyond
    max_length are cut, and the characters they covered are read out as O."""
    enc = Encoded([], [], [], texts=[], offsets=[], gold=[])
    for ex, (ids, offsets) in zip(examples, tokenizer.encode_with_offsets([e.text_a for e in examples])):
        ids, offsets = ids[:max_length - 2], offsets[:max_length - 2]
        enc.ids.append([CLS, *ids, SEP])
        enc.types.append([0] * (len(ids) + 2))
        enc.labels.append([IGNORE, *piece_labels(ex.label, offsets, ex.text_a), IGNORE])
        enc.texts.append(ex.text_a)
        enc.offsets.append(offsets)
        enc.gold.append(list(ex.label))
    return enc


def read_out(piece_predictions: list[list[int]], enc: Encoded, classes: Sequence[str]) -> list[list[str]]:
    """Per-piece predictions (one row per example, [CLS] first) -> tags per character."""
    return [character_tags(p[1:1 + len(o)], o, t, classes)
            for p, o, t in zip(piece_predictions, enc.offsets, enc.texts)]


def gold_tags(enc: Encoded, classes: Sequence[str]) -> list[list[str]]:
    return [[classes[i] for i in g] for g in enc.gold]
