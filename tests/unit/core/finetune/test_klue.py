"""Token classification and three-way NLI: entity-level F1 (seqeval's definition), the
piece <-> character alignment (a round trip of gold tags scores F1 = 1), KLUE's file
layouts and their hash split, and a generated NER task that fine-tuning must learn."""
import json
import random
from pathlib import Path

import pytest
import torch

from core.finetune import (
    FinetuneConfig,
    TaskError,
    TokenTaggingModel,
    alignment_ceiling,
    entities,
    entity_f1,
    finetune_seeds,
    load_task,
    parse_task,
    split_tasks,
)
from core.finetune.klue import split_of
from core.finetune.tagging import IGNORE, character_tags, encode_tagged, piece_labels, tag_names
from tests import SHARED_DATA
from variants import build_model

WORDS = "the of and to in is for that with as on by this be are from or it an at".split()
CLASSES = tag_names(["LC", "PS"])


def test_entities_follow_seqeval():
    tags = ["B-PS", "I-PS", "O", "I-LC", "I-LC", "B-LC", "I-PS", "O", "B-PS"]
    assert entities(tags) == {("PS", 0, 2), ("LC", 3, 5), ("LC", 5, 6), ("PS", 6, 7), ("PS", 8, 9)}


def test_entity_f1_counts_only_whole_spans_of_the_right_type():
    gold = [["B-PS", "I-PS", "O", "B-LC"], ["O", "B-LC", "I-LC", "I-LC"]]
    pred = [["B-PS", "I-PS", "O", "B-PS"],   # the PS right; LC with the wrong type
            ["O", "B-LC", "I-LC", "O"]]      # the span one character short
    f1 = entity_f1(pred, gold)
    # 1 true positive, 3 predicted, 3 gold: P = R = 1/3
    assert f1.value == pytest.approx(1 / 3) and f1.n == 2 and f1.low <= f1.value <= f1.high
    assert entity_f1(gold, gold).value == 1.0
    assert entity_f1([["O"] * 4] * 2, gold).value == 0.0   # a model that found nothing


def _tagged(sentence_words: list[str], entity_at: dict[int, tuple[int, str]]) -> tuple[str, tuple[int, ...]]:
    """A sentence and its character tags; entity_at: first word -> (number of words, type)."""
    text, tags, i = "", [], 0
    while i < len(sentence_words):
        if text:
            text += " "
            tags.append("O")
        n, kind = entity_at.get(i, (1, None))
        span = " ".join(sentence_words[i:i + n])
        tags += ["O"] * len(span) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
        text += span
        i += n
    return text, tuple(CLASSES.index(t) for t in tags)


def test_gold_tags_round_trip_through_the_pieces_with_f1_one(small_data):
    """Entities on word boundaries (multi-word ones span their inner spaces) come back
    exactly through SentencePiece's offsets, however the words split into pieces."""
    tok, rng = small_data.tokenizer, random.Random(0)
    texts, gold = [], []
    for _ in range(40):
        words = rng.choices(WORDS + ["Washington", "Tolkien", "unbelievably"], k=9)
        text, tags = _tagged(words, {1: (2, "PS"), 5: (1, "LC"), 7: (2, "LC")})
        texts.append(text)
        gold.append(tags)
    offsets = [o for _, o in tok.encode_with_offsets(texts)]
    assert any(len(o) > 9 for o in offsets)  # some words are several pieces
    assert alignment_ceiling(gold, offsets, texts, CLASSES) == 1.0
    enc = encode_tagged([type("E", (), {"text_a": t, "label": g})() for t, g in zip(texts, gold)], tok, 512)
    assert all(row[0] == IGNORE and row[-1] == IGNORE for row in enc.labels)
    back = [character_tags(lab[1:-1], o, t, CLASSES) for lab, o, t in zip(enc.labels, enc.offsets, enc.texts)]
    assert back == [[CLASSES[i] for i in g] for g in gold]


def test_an_entity_ending_inside_a_piece_lowers_the_ceiling():
    """One piece covers "Parisian" but the entity is "Paris": the pieces cannot say so, and
    the ceiling says what that costs instead of hiding it."""
    text = "in Parisian"
    tags = [0, 0, 0] + [CLASSES.index("B-LC")] + [CLASSES.index("I-LC")] * 4 + [0, 0, 0]
    offsets = [(0, 2), (2, 11)]  # "▁in", "▁Parisian" (the space belongs to the second)
    labels = piece_labels(tags, offsets, text)
    assert labels == [0, CLASSES.index("B-LC")]
    assert character_tags(labels, offsets, text, CLASSES)[3:] == ["B-LC"] + ["I-LC"] * 7
    assert alignment_ceiling([tags], [offsets], [text], CLASSES) == 0.0


def test_spaces_inside_an_entity_continue_it_and_truncated_characters_are_outside():
    text = "on 7 May here"
    offsets = [(0, 2), (3, 4), (5, 8)]  # the gaps at 2 and 4 and the cut-off tail are no piece's
    dt = tag_names(["DT"])
    B, I = dt.index("B-DT"), dt.index("I-DT")  # noqa: E741
    assert character_tags([0, B, I], offsets, text, dt) == ["O"] * 3 + ["B-DT"] + ["I-DT"] * 4 + ["O"] * 5
    assert character_tags([0, B, 0], offsets, text, dt) == ["O"] * 3 + ["B-DT"] + ["O"] * 9
    assert character_tags([0, B, B], offsets, text, dt) == ["O"] * 3 + ["B-DT", "O", "B-DT"] + ["I-DT"] * 2 + \
        ["O"] * 5


# -- KLUE's layouts -------------------------------------------------------------------------------
def write_ner(path: Path, sentences: list[tuple[str, list[str]]]) -> Path:
    lines = ["## 토큰, 레이블 구분자 : \\t", "## 컬럼명 : CHAR\tNE_TAG"]
    for i, (text, tags) in enumerate(sentences):
        lines.append(f"## guid-{i}\t{text}")
        lines += [f"{c}\t{t}" for c, t in zip(text, tags)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ner_sentences(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Random words; "module" is an entity (PS), "function" too (LC); the rest is O."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        words = rng.choices(WORDS, k=6)
        words.insert(rng.randrange(7), rng.choice(["module", "function"]))
        text, tags = " ".join(words), []
        for j, w in enumerate(words):
            kind = {"module": "PS", "function": "LC"}.get(w)
            tags += ["O"] * len(w) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(w) - 1)
            if j < len(words) - 1:
                tags.append("O")
        out.append((text, tags))
    return out


def test_klue_ner_file_is_read_and_split_by_a_hash(tmp_path):
    sentences = ner_sentences(60)
    sentences[0] = ("김 씨가 서울에", ["B-PS", "O", "O", "O", "O", "B-LC", "I-LC", "O"])
    task = load_task(f"klue-ner:{write_ner(tmp_path / 'ner.tsv', sentences)}")
    assert task.spec.kind == "token-classification" and task.name == "ner" and task.num_labels == len(task.classes)
    assert task.classes == ["O", "B-LC", "I-LC", "B-PS", "I-PS"]
    texts = {s: [e.text_a for e in ex] for s, ex in task.splits.items()}
    assert sorted(sum(texts.values(), [])) == sorted(t for t, _ in sentences)
    assert all(split_of(t) == s for s, ts in texts.items() for t in ts)
    first = next(e for e in sum(task.splits.values(), []) if e.text_a == "김 씨가 서울에")
    assert [task.classes[i] for i in first.label] == sentences[0][1]
    # the file's order does not move a sentence to another split
    again = load_task(f"klue-ner:{write_ner(tmp_path / 'ner2.tsv', sentences[::-1])}")
    assert {s: sorted(e.text_a for e in ex) for s, ex in again.splits.items()} == \
        {s: sorted(ts) for s, ts in texts.items()}


def test_klue_nli_file_is_read_with_three_named_classes(tmp_path):
    rng = random.Random(1)
    items = [{"premise": f"전제 {i // 3} " + " ".join(rng.choices(WORDS, k=4)), "hypothesis": f"가설 {i}",
              "gold_label": ("entailment", "neutral", "contradiction")[i % 3]} for i in range(90)]
    path = tmp_path / "nli.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    task = load_task(f"klue-nli:{path}")
    assert task.classes == ["entailment", "neutral", "contradiction"] and task.spec.kind == "pair-classification"
    for split, examples in task.splits.items():
        for ex in examples:
            assert split_of(ex.text_a) == split
            assert task.classes[ex.label] == items[int(ex.text_b.split()[1])]["gold_label"]
    premises = {s: {e.text_a for e in ex} for s, ex in task.splits.items()}
    assert not premises["train"] & premises["test"]  # a premise's hypotheses stay together


@pytest.mark.parametrize("kind, content, expected", [
    ("ner", "", "no tagged sentences"),
    ("ner", "가\tB-PS\n나\tX-PS\n", "is not BIO"),
    ("ner", "가나\tO\n", "expected CHAR<TAB>TAG"),
    ("nli", "[{", "not JSON"),
    ("nli", "{}", "non-empty JSON list"),
    ("nli", '[{"premise": "a", "gold_label": "neutral"}]', "entry 0 has no hypothesis"),
    ("nli", '[{"premise": "a", "hypothesis": "b", "gold_label": "maybe"}]', "gold_label 'maybe'"),
    ("nli", '[{"premise": "a", "hypothesis": "b", "gold_label": "neutral"}]', "split empty"),
])
def test_bad_klue_files_give_one_line_errors(tmp_path, kind, content, expected):
    path = tmp_path / ("bad.tsv" if kind == "ner" else "bad.json")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskError, match=expected) as err:
        load_task(f"klue-{kind}:{path}")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_klue_task_names_parse_and_list():
    assert split_tasks("klue-ner,klue-nli,korsts") == ["klue-ner", "klue-nli", "korsts"]
    spec = parse_task("klue-ner", root="/data")
    assert spec.file == Path("/data/klue/klue-ner-v1.1_dev_part1.tsv") and spec.name == "klue-ner"
    assert parse_task("klue-nli:/x/train.json").name == "train"
    with pytest.raises(TaskError, match="klue-ner:FILE"):
        parse_task("tsv:/d:text_a=a,label=y,kind=token-classification")
    with pytest.raises(TaskError, match="not found"):
        load_task("klue-ner:/nonexistent/ner.tsv")


# -- the head and the loop --------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["bert", "albert-reformer"])
def test_tagging_head_on_every_kind_of_arm(variant):
    extra = {"lsh_bucket_size": 8} if "reformer" in variant else {}
    model = TokenTaggingModel(build_model(variant, size="tiny", vocab_size=600, max_position_embeddings=64, **extra), 5)
    ids = torch.randint(5, 600, (3, 21))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    labels = torch.randint(0, 5, (3, 21))
    labels[1, 15:] = IGNORE
    loss, logits = model(ids, mask, torch.zeros_like(ids), labels=labels)
    loss.backward()
    assert logits.shape == (3, 21, 5) and torch.isfinite(loss)


def test_finetuning_learns_a_generated_ner_task(small_data, tmp_path):
    task = load_task(f"klue-ner:{write_ner(tmp_path / 'ner.tsv', ner_sentences(300))}")
    torch.manual_seed(0)
    model = build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64)
    cfg = FinetuneConfig(max_steps=50, batch_size=16, lr=2e-3, max_length=48, device="cpu", seed=0, patience=0)
    summary = finetune_seeds(model, small_data.tokenizer, task, cfg, seeds=1)
    result = summary.results[0]
    assert summary.metric == "f1" and summary.chance == 0.0 and summary.n == len(task.splits["test"])
    assert result.test.value >= 0.9 and result.test.low > 0.5, result.test
    assert summary.to_dict()["ci95_seed0"] == [result.test.low, result.test.high]


def test_real_klue_files_when_present():
    root = SHARED_DATA / "klue"
    if not root.is_dir():
        pytest.skip(f"optional KLUE sample not found at {root}")
    ner, nli = load_task("klue-ner"), load_task("klue-nli")
    assert sum(map(len, ner.splits.values())) == 3000 and len(ner.classes) == 13
    assert sum(map(len, nli.splits.values())) == 2000 and nli.num_labels == 3
    assert all(len(e.text_a) == len(e.label) for e in ner.splits["test"])
