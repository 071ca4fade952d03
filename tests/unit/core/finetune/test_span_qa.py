"""Span question answering (`core.finetune.span_qa`, `core.finetune.squad`): KorQuAD's official
exact match and character F1 against hand-computed values, SQuAD-style windows on
SentencePiece offsets (every gold answer recoverable from some window), decoding across
windows, the split by article, and one line for each kind of bad input."""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from core.finetune import (
    QAExample,
    TaskError,
    char_f1,
    exact_match,
    load_task,
    normalize_answer,
    span_ceiling,
    split_counts,
    squad_scores,
    write_split,
)
from core.finetune.span_qa import (
    SpanEncoded,
    answer_pieces,
    decode,
    encode_span_qa,
    first_words_baseline,
    nbest,
    piece_spans,
    question_scores,
    truncation_warning,
    windows,
    write_predictions,
)
from core.finetune.squad import read_squad
from tests import SHARED_DATA

WORDS = "the of and to in is for that with as on by".split()
NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def squad_file(path: Path, articles: int = 40, seed: int = 0) -> Path:
    """A learnable SQuAD-shaped file: two passages per article, each naming one word in
    brackets, and the question "who is in brackets?" (the answer: that word)."""
    rng, data, qid = random.Random(seed), [], 0
    for a in range(articles):
        paragraphs = []
        for _ in range(2):
            name = rng.choice(NAMES)
            context = (f"{' '.join(rng.choices(WORDS, k=rng.randint(3, 30)))} ({name}) "
                       f"{' '.join(rng.choices(WORDS, k=rng.randint(3, 30)))}.")
            paragraphs.append({"context": context, "qas": [{
                "id": f"q{qid}", "question": "who is in brackets?",
                "answers": [{"text": name, "answer_start": context.index(f"({name})") + 1}]}]})
            qid += 1
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "tiny", "data": data}), encoding="utf-8")
    return path


# -- the official metric ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, normalised", [
    ("《임진왜란》", "임진왜란"),                      # KorQuAD's brackets become spaces
    ("(1592년)", "1592년"),
    ("‘이순신’ 장군!", "이순신 장군"),                  # curly quotes, then ASCII punctuation
    ("  The  Answer,\tis 42. ", "the answer is 42"),   # lower-cased, whitespace collapsed
    ("a-b", "ab"),                                     # punctuation removed, not spaced
    ("「x」", "「x」"),                                 # only the official list is removed
])
def test_normalisation_is_the_official_one(text, normalised):
    assert normalize_answer(text) == normalised


def test_exact_match_and_f1_against_hand_computed_values():
    assert exact_match('"Hello, World!"', "hello world") and exact_match("《임진왜란》", "임진왜란")
    assert not exact_match("임진 왜란", "임진왜란")        # exact match keeps the space ...
    assert char_f1("임진 왜란", "임진왜란") == 1.0          # ... F1 counts characters without spaces
    # "서울특별시" vs "서울": 2 common characters, P = 2/5, R = 2/2 -> F1 = 2PR / (P + R) = 4/7
    assert char_f1("서울특별시", "서울") == pytest.approx(4 / 7)
    # multisets: "aab" vs "ab" shares a and b once: P = 2/3, R = 1 -> 0.8
    assert char_f1("aab", "ab") == pytest.approx(0.8)
    assert char_f1("(서울)", "서울.") == 1.0                # brackets and punctuation gone on both sides
    assert char_f1("", "서울") == 0.0 and char_f1("!!", "서울") == 0.0   # empty (after normalising) scores 0
    assert char_f1("부산", "서울") == 0.0


def test_a_question_scores_its_best_gold_answer_and_an_empty_prediction_zero():
    # several gold answers: EM from the second, F1 from the first would be lower
    assert question_scores("정유재란", ["임진왜란", "정유재란"]) == (100.0, 100.0)
    em, f1 = question_scores("임진왜란 때", ["임진왜란", "왜란"])  # P = 4/5, R = 1 -> 8/9; vs 왜란: 2/5, 1 -> 4/7
    assert em == 0.0 and f1 == pytest.approx(100 * 8 / 9)
    assert question_scores("", ["서울"]) == (0.0, 0.0) and question_scores(None, ["서울"]) == (0.0, 0.0)


def test_scores_are_means_over_questions_on_0_to_100_with_a_bootstrap_interval():
    ex = [QAExample("a", "q", "c", (("서울", 0),)), QAExample("b", "q", "c", (("부산", 0), ("부산시", 0))),
          QAExample("c", "q", "c", (("대구", 0),)), QAExample("d", "q", "c", (("인천", 0),))]
    got = squad_scores({"a": "서울", "b": "부산광역시", "c": ""}, ex)   # d: no prediction, scores 0
    # b: vs 부산시 P = 3/5, R = 1 -> 3/4 (better than vs 부산: 2/5, 1 -> 4/7)
    assert got.per_question == {"exact_match": [100.0, 0.0, 0.0, 0.0], "f1": pytest.approx([100.0, 75.0, 0.0, 0.0])}
    em, f1 = got.scores["exact_match"], got.scores["f1"]
    assert (em.value, em.n, f1.value, f1.n) == (25.0, 4, 43.75, 4)
    assert 0.0 <= em.low <= em.value <= em.high <= 100.0 and f1.low <= f1.value <= f1.high
    assert got.ids == ["a", "b", "c", "d"] and got.ids_key == squad_scores({}, ex).ids_key


def test_the_chance_level_answers_the_passages_first_words():
    test = [QAExample("a", "q", "서울 특별시 중구", (("서울 특별시", 0),)),
            QAExample("b", "q", "부산 해운대 구", (("해운대", 3),))]
    # training answers of 2 and 4 words: the guess is the passage's first 3 words, all of them here;
    # a: 5 of 7 characters right, R = 1 -> F1 = 10/12; b: 3 of 6, R = 1 -> 2/3
    train = [QAExample("t1", "q", "x", (("one two", 0),)), QAExample("t2", "q", "x", (("one two three four", 0),))]
    assert first_words_baseline(train, test) == pytest.approx({"exact_match": 0.0, "f1": 100 * (10 / 12 + 2 / 3) / 2})
    # 1 and 3 words: the first 2; a exactly, b "부산 해운대": 3 of 5, R = 1 -> 3/4
    train = [QAExample("t1", "q", "x", (("one", 0),)), QAExample("t2", "q", "x", (("one two three", 0),))]
    assert first_words_baseline(train, test) == pytest.approx({"exact_match": 50.0, "f1": 87.5})


# -- windows -------------------------------------------------------------------------------------------------
def test_windows_start_a_stride_apart_and_cover_the_passage():
    assert windows(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert windows(10, 4, 4) == [(0, 4), (4, 4), (8, 2)]
    assert windows(3, 4, 2) == [(0, 3)]
    assert windows(0, 4, 2) == [(0, 0)]


def test_answer_pieces_cover_the_answer_and_leave_out_the_space_before_it():
    text = "ab cde fg"
    spans = piece_spans([(0, 2), (2, 4), (4, 6), (6, 9)], text)   # "ab", " c", "de", " fg"
    assert spans == [(0, 2), (3, 4), (4, 6), (7, 9)]
    assert answer_pieces(spans, 3, "cde") == (1, 2)
    assert answer_pieces(spans, 4, "de fg") == (2, 3)
    assert answer_pieces(spans, 4, "d") == (2, 2)                 # inside a piece: the piece holding it


def _passage_examples() -> list[QAExample]:
    passage = ("Return the number of items in a container (a list, a tuple or a dict). The function sorts the "
               "items of a list in place and returns None; a copy is made by the sorted function instead, which "
               "accepts any iterable and a key function.")
    answers = ["number of items", "a tuple", "sorts", "returns None", "sorted function", "key function", "Return"]
    return [QAExample(f"p{i}", f"what is answer {i}?", passage, ((a, passage.index(a)),))
            for i, a in enumerate(answers)]


def test_every_gold_answer_is_recoverable_from_some_window(small_data):
    examples = _passage_examples()
    enc = encode_span_qa(examples, small_data.tokenizer, max_length=24, type_ids=True, max_query_len=8, doc_stride=5)
    ids = small_data.tokenizer.encode([examples[0].context])[0]
    assert len(ids) > 40 and len(enc.ids) > 3 * len(examples)   # many windows per question
    for w in range(len(enc.ids)):
        p0, n, first = enc.piece0[w], enc.length[w], enc.first[w]
        assert enc.ids[w][first:first + n] == ids[p0:p0 + n]    # the window is the passage's own pieces
        assert len(enc.ids[w]) <= 24 and enc.ids[w][-1] == enc.ids[w][first - 1]   # [SEP] on both sides
        assert enc.types[w] == [0] * first + [1] * (n + 1)
    for q, ex in enumerate(examples):
        starts = [enc.piece0[w] for w in range(len(enc.ids)) if enc.question[w] == q]
        assert starts == list(range(0, 5 * len(starts), 5))    # doc_stride apart, the last reaching the end
        a, b = enc.gold_pieces[q][0]
        held = [w for w in range(len(enc.ids)) if enc.question[w] == q and enc.labels[w] != (0, 0)]
        assert held, f"no window holds {ex.answers[0][0]!r}"
        for w in held:  # the label points at the gold pieces, inside the window
            s, e = enc.labels[w]
            assert enc.ids[w][s] == ids[a] and enc.ids[w][e] == ids[b] and s - enc.first[w] == a - enc.piece0[w]
    # a model that points at the gold pieces recovers every answer's own text, exactly
    assert span_ceiling(enc) == {"exact_match": 100.0, "f1": 100.0}


def test_a_piece_straddling_the_answer_caps_what_any_model_can_score(small_data):
    passage = "Return the number of items in a container."
    pieces = small_data.tokenizer.pieces(small_data.tokenizer.encode([passage])[0])
    assert "▁contain" in pieces and "er" in pieces              # the tokenizer this test assumes
    ex = QAExample("x", "where?", passage, (("tain", passage.index("tain")),))
    enc = encode_span_qa([ex], small_data.tokenizer, max_length=64, type_ids=True)
    # the best a model can point at is "▁contain": P = 4/7, R = 1 -> F1 = 8/11
    assert span_ceiling(enc) == pytest.approx({"exact_match": 0.0, "f1": 100 * 8 / 11})


def test_a_long_question_is_cut_to_the_query_limit_in_one_line(small_data):
    examples = _passage_examples()[:3]
    examples[1] = QAExample("long", " ".join(["what is the number of items in the container"] * 4),
                            examples[1].context, examples[1].answers)
    enc = encode_span_qa(examples, small_data.tokenizer, max_length=48, type_ids=True, max_query_len=16)
    n = len(small_data.tokenizer.encode([examples[1].question])[0])
    assert n > 16 and enc.truncated == [("long", n)]
    assert {enc.first[w] for w in range(len(enc.ids)) if enc.question[w] == 1} == {18}   # [CLS] + 16 + [SEP]
    line = truncation_warning("mine", "test", enc, 16)
    assert line == (f"mine test: 1 of 3 questions are longer than 16 pieces (max_query_len=16) and were cut to 16 "
                    f"(BERT's rule); the first: 'long', {n} pieces; the longest {n}. Raise max_query_len (or "
                    "max_length) to keep them whole")
    enc = encode_span_qa(examples, small_data.tokenizer, max_length=25, type_ids=True, max_query_len=64)
    assert enc.query_limit == 11 and "(max_query_len=64, but at most half of the 25-token window)" in \
        truncation_warning("mine", "test", enc, 64)
    assert truncation_warning("mine", "test", encode_span_qa(examples[:1], small_data.tokenizer, 48, True), 64) is None


# -- decoding ------------------------------------------------------------------------------------------------
def _two_windows() -> SpanEncoded:
    """One question on a passage of 6 one-character pieces, in two windows of 4 (pieces 0-3
    and 2-5) after a 3-token head ([CLS] q [SEP])."""
    ex = QAExample("q", "?", "a b c d e f", (("d", 6),))
    spans = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]
    return SpanEncoded([[0] * 8, [0] * 8], [[0] * 8] * 2, [(0, 0), (0, 0)], question=[0, 0], first=[3, 3],
                       piece0=[0, 2], length=[4, 4], examples=[ex], spans=[spans], gold_pieces=[[(3, 3)]])


def _logits(at: dict[int, float]) -> np.ndarray:
    x = np.zeros(8)
    for i, v in at.items():
        x[i] = v
    return x


def test_decoding_picks_the_best_span_across_windows():
    enc = _two_windows()
    # window 0: "b" (start 4 + end 4 = 8); window 1: "d e" (window positions 4 and 5: 6 + 5 = 11)
    starts = [_logits({4: 4.0}), _logits({4: 6.0})]
    ends = [_logits({4: 4.0}), _logits({5: 5.0})]
    assert decode(starts, ends, enc) == {"q": "d e"}
    best = nbest(starts, ends, enc, n_best=3)[0]
    assert best[0] == (11.0, "d e") and len(best) == 3 and best[1][0] < 11.0
    # the answer length limit: "d e" is two pieces; with at most one, window 0's "b" wins
    assert decode(starts, ends, enc, max_answer_len=1) == {"q": "b"}
    # an end before its start is never a span: "f" to "c" would score 17; "f" alone scores 9, "c" alone 8
    assert decode([_logits({}), _logits({6: 9.0})], [_logits({}), _logits({3: 8.0})], enc) == {"q": "f"}


def test_a_text_found_in_two_windows_keeps_its_best_score():
    enc = _two_windows()
    # "c" is piece 2: window 0's position 5, window 1's position 3 (the overlap)
    best = nbest([_logits({5: 1.0}), _logits({3: 3.0})], [_logits({5: 1.0}), _logits({3: 3.0})], enc, n_best=20)[0]
    texts = [t for _, t in best]
    assert texts[0] == "c" and best[0][0] == 6.0 and len(texts) == len(set(texts))


def test_predictions_are_written_in_the_official_format(tmp_path):
    path = write_predictions({"q1": "서울", "q2": ""}, tmp_path / "korquad" / "predictions.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"q1": "서울", "q2": ""}
    assert "서울" in path.read_text(encoding="utf-8")                    # UTF-8, not \\u escapes


# -- the file, its split, bad input --------------------------------------------------------------------------
def test_one_file_is_split_by_article(tmp_path):
    task = load_task(f"korquad:{squad_file(tmp_path / 'tiny.json')}")
    assert task.name == "tiny" and task.spec.kind == "span-qa"
    sizes = {s: len(ex) for s, ex in task.splits.items()}
    assert sizes == {"train": 52, "dev": 10, "test": 18} and sum(sizes.values()) == 80
    assert split_counts(task.spec) == {"train": (26, 52), "dev": (5, 10), "test": (9, 18)}
    sides = {}
    for split, examples in task.splits.items():
        for ex in examples:
            assert sides.setdefault(ex.article, split) == split        # never an article on both sides
    written = json.loads(write_split(task.spec, "test", tmp_path / "test.json").read_text(encoding="utf-8"))
    assert {qa["id"] for a in written["data"] for p in a["paragraphs"] for qa in p["qas"]} == \
        {ex.id for ex in task.splits["test"]} and written["version"] == "tiny"


def test_korquad_is_split_95_11_34_articles():
    path = SHARED_DATA / "korquad" / "KorQuAD_v1.0_dev.json"
    if not path.is_file():
        pytest.skip(f"KorQuAD 1.0's dev set not found at {path}")
    assert split_counts("korquad") == {"train": (95, 3617), "dev": (11, 424), "test": (34, 1733)}


def _bad(tmp_path: Path, data) -> str:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return f"korquad:{path}"


def _one_line(spec: str) -> str:
    with pytest.raises(TaskError) as err:
        load_task(spec)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_input_is_one_line(tmp_path):
    assert "not JSON (Expecting property name enclosed in double quotes at line 1)" in _one_line(_bad(tmp_path, "{x"))
    assert "not SQuAD-shaped: the top level is a list without a 'data' list" in _one_line(_bad(tmp_path, [1]))
    assert "not SQuAD-shaped: 'data' is an object, not a list of articles" in _one_line(_bad(tmp_path, {"data": {}}))
    qa = {"id": "x1", "question": "q?", "answers": []}
    one = {"data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [qa]}]}]}
    assert "data[0].paragraphs[0].qas[0] (id 'x1') has no answers" in _one_line(_bad(tmp_path, one))
    qa["answers"] = [{"text": "b"}]
    assert "data[0].paragraphs[0].qas[0].answers[0] has no integer 'answer_start'" in _one_line(_bad(tmp_path, one))
    one["data"][0]["paragraphs"][0]["qas"] = [{"id": "x1", "question": "q", "answers": [{"text": "b",
                                                                                         "answer_start": 1}]}] * 2
    assert "data[0].paragraphs[0].qas[1] repeats the id 'x1'" in _one_line(_bad(tmp_path, one))
    assert "task 'korquad:': expected korquad:FILE" in _one_line("korquad:")
    assert "not found" in _one_line(f"korquad:{tmp_path / 'none.json'}")


def test_answer_starts_that_miss_their_text_are_counted_and_the_first_named(tmp_path):
    data = json.loads(squad_file(tmp_path / "tiny.json").read_text(encoding="utf-8"))
    data["data"][3]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] += 1
    data["data"][7]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] -= 2
    qa, context = data["data"][3]["paragraphs"][1]["qas"][0], data["data"][3]["paragraphs"][1]["context"]
    text, start = qa["answers"][0]["text"], qa["answers"][0]["answer_start"]
    line = _one_line(_bad(tmp_path, data))
    assert line.endswith(f"bad.json: 2 answer(s) whose answer_start does not point at their text; the first: "
                         f"question 'q7' (data[3].paragraphs[1].qas[0]), answer {text!r} at {start} where the "
                         f"context reads {context[start:start + len(text)]!r}")
    assert read_squad(tmp_path / "tiny.json")[3][1][1].id == "q7"    # the file itself reads
