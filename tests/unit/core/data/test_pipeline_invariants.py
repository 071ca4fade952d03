"""Invariants of the data pipeline, checked over many seeds."""
import gzip
import json
from collections import Counter

import numpy as np
import pytest
import torch

from core.data import CLS, MASK, PAD, SEP, DataConfig, build_dataset
from core.data.corpus import CorpusError, CorpusReport, iter_documents, resolve_files
from core.data.examples import build_examples
from core.data.masking import mask_sequence, ngram_probabilities, ngram_spans, word_units
from core.data.sentences import split_sentences
from core.data.tokenizer import TokenizerError, character_counts, characters_needed, vocab_for

SMALL = dict(vocab_size=600, max_length=64, dupe_factor=3, max_eval_examples=200)


@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**SMALL), corpus_file, cache_dir)


def test_special_tokens_have_fixed_ids(data):
    assert data.tokenizer.pieces(range(5)) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (PAD, CLS, SEP, MASK) == (0, 2, 3, 4)


def random_sequence(data, rng, T=64):
    ids = rng.integers(5, data.tokenizer.vocab_size, T)
    ids[0], ids[-1], ids[T // 2] = CLS, SEP, SEP
    ids[T - 5:T - 1] = PAD
    return ids


@pytest.mark.parametrize("unit", ["token", "whole-word", "ngram"])
def test_mask_rate_split_and_specials(data, unit):
    cfg = data.cfg.replace(mask_unit=unit)
    counts = Counter()
    for seed in range(400):
        rng = np.random.default_rng(seed)
        ids = random_sequence(data, rng, T=int(rng.integers(30, 65)))
        masked, pos = mask_sequence(ids, cfg, data.tokenizer.word_start, data.tokenizer.vocab_size, rng)
        assert (ids[pos] >= 5).all(), "a special token or padding was masked"
        assert (masked[ids < 5] == ids[ids < 5]).all()
        n_cand = int((ids >= 5).sum())
        budget = min(cfg.max_predictions, round(n_cand * cfg.mask_prob))
        assert len(pos) <= budget
        if unit == "token":
            assert len(pos) == budget  # exact per-sequence budget
        counts["cand"] += n_cand
        counts["masked"] += len(pos)
        counts["mask"] += int((masked[pos] == MASK).sum())
        counts["keep"] += int((masked[pos] == ids[pos]).sum())
    rate = counts["masked"] / counts["cand"]
    assert abs(rate - 0.15) < (0.01 if unit == "token" else 0.03)
    assert abs(counts["mask"] / counts["masked"] - 0.8) < 0.03
    assert abs(counts["keep"] / counts["masked"] - 0.1) < 0.03


def test_whole_word_units_are_masked_completely(data):
    cfg = data.cfg.replace(mask_unit="whole-word")
    es = data.train
    for i in range(200):
        ids = es.example(i).astype(np.int64)
        rng = np.random.default_rng(i)
        _, pos = mask_sequence(ids, cfg, data.tokenizer.word_start, data.tokenizer.vocab_size, rng)
        chosen = set(pos.tolist())
        for word in word_units(ids, ids >= 5, data.tokenizer.word_start):
            hit = chosen.intersection(word.tolist())
            assert not hit or hit == set(word.tolist())


def test_word_units_follow_the_word_start_marker():
    word_start = np.array([True] * 5 + [True, False, False, True, False])  # ids 5 and 8 start words
    ids = np.array([CLS, 5, 6, 7, 8, 9, SEP, 6, 5])
    units = word_units(ids, ids >= 5, word_start)
    # a continuation right after [SEP] opens a new word: it cannot continue across a separator
    assert [u.tolist() for u in units] == [[1, 2, 3], [4, 5], [7], [8]]


def test_ngram_lengths_follow_inverse_n():
    p = ngram_probabilities(3)
    np.testing.assert_allclose(p, np.array([1, 1 / 2, 1 / 3]) / (11 / 6))
    words = [np.array([i]) for i in range(400)]
    first = Counter()
    trials = 6000
    for seed in range(trials):
        spans = ngram_spans(words, budget=60, max_ngram=3, rng=np.random.default_rng(seed))
        first[spans[0][1]] += 1
    observed = np.array([first[n] / trials for n in (1, 2, 3)])
    np.testing.assert_allclose(observed, p, atol=0.025)


def test_no_example_exceeds_max_length_in_any_packing(data, corpus_file, cache_dir):
    mean = {}
    for packing, task in [("segment-pair", "nsp"), ("sentence-pair", "sop"),
                          ("full-sentences", "none"), ("doc-sentences", "none")]:
        cfg = data.cfg.replace(packing=packing, sentence_task=task)
        docs = list(range(data.store.n_docs))
        lengths = [len(ex.ids) for ex in build_examples(data.store, docs, cfg, seed=3)]
        assert lengths and max(lengths) <= cfg.max_length, packing
        mean[packing] = np.mean(lengths)
    # filling across document boundaries packs more tokens per input than stopping at them,
    # and single sentence pairs are the shortest inputs (RoBERTa Table 2's point)
    assert mean["full-sentences"] > mean["doc-sentences"] > mean["sentence-pair"]


def test_nsp_negatives_come_from_another_document(data):
    cfg = data.cfg.replace(sentence_task="nsp")
    examples = list(build_examples(data.store, list(range(data.store.n_docs)), cfg, seed=5))
    labels = np.array([ex.label for ex in examples])
    assert all((ex.b_doc != ex.a_doc) == (ex.label == 1) for ex in examples)
    assert 0.4 < labels.mean() < 0.65  # about half, a bit more: lone segments get a random B


def _find_all(hay: list[int], needle: list[int]) -> list[int]:
    h, n = "," + ",".join(map(str, hay)) + ",", "," + ",".join(map(str, needle)) + ","
    found, i = [], h.find(n)
    while i >= 0:
        found.append(i)
        i = h.find(n, i + 1)
    return found


def test_sop_negatives_are_the_swapped_order(data):
    cfg = data.cfg.replace(sentence_task="sop")
    examples = list(build_examples(data.store, list(range(data.store.n_docs)), cfg, seed=6))
    labels = [ex.label for ex in examples]
    assert 0.4 < np.mean(labels) < 0.6
    checked = 0
    for ex in examples[:400]:
        doc = [int(t) for s in data.store.doc(ex.a_doc) for t in s]
        a = ex.ids[1:ex.type_start - 1].tolist()
        b = ex.ids[ex.type_start:-1].tolist()
        pa, pb = _find_all(doc, a), _find_all(doc, b)
        assert pa and pb, "both segments are contiguous text of the same document"
        if len(pa) > 1 or len(pb) > 1:  # text that recurs in its document has no single order
            continue
        checked += 1
        assert (pa[0] > pb[0]) == (ex.label == 1)
    assert checked > 100


def test_static_masks_repeat_across_epochs_dynamic_do_not(corpus_file, cache_dir):
    static = build_dataset(DataConfig(**SMALL), corpus_file, cache_dir)
    idx = np.arange(8)
    e0, e1, e3 = (static.collate(static.train, idx, epoch=e)["input_ids"] for e in (0, 1, 3))
    assert e0.equal(e3)          # dupe_factor=3: epoch 3 reuses copy 0
    assert not e0.equal(e1)
    dynamic = build_dataset(DataConfig(**SMALL, masking="dynamic"), corpus_file, cache_dir)
    d0, d0b, d1 = (dynamic.collate(dynamic.train, idx, epoch=e)["input_ids"] for e in (0, 0, 1))
    assert d0.equal(d0b) and not d0.equal(d1)
    # evaluation masks are fixed whatever the training mode
    ev = lambda d: next(d.eval_batches("mlm", 16))["mlm_labels"]  # noqa: E731
    assert ev(static).equal(ev(static))


def test_same_seed_same_examples(corpus_file, tmp_path):
    a = build_dataset(DataConfig(**SMALL), corpus_file, tmp_path / "a")
    b = build_dataset(DataConfig(**SMALL), corpus_file, tmp_path / "b")
    c = build_dataset(DataConfig(**SMALL, seed=7), corpus_file, tmp_path / "a")
    assert np.array_equal(a.train.ids, b.train.ids)
    assert np.array_equal(a.train.masks[1][0], b.train.masks[1][0])
    assert not np.array_equal(a.train.ids[:2000], c.train.ids[:2000])


def test_batches_resume_from_a_position(data):
    full = [b for _, (e, i, b) in zip(range(6), data.train_batches(16))]
    per_epoch = data.batches_per_epoch(16)
    resumed = [b for _, (e, i, b) in zip(range(3), data.train_batches(16, epoch=0, start=3))]
    for x, y in zip(full[3:], resumed):
        assert all(x[k].equal(y[k]) for k in x)
    assert per_epoch > 6


def test_stats_report_realised_rates(data):
    s = data.stats()
    assert s["examples"] == len(data.train) and s["max_length"] <= 64
    assert abs(s["mask_rate"] - 0.15) < 0.02
    assert abs(s["replace_frac"] - 0.8) < 0.05 and abs(s["random_frac"] - 0.1) < 0.05
    assert 0.4 < s["sentence_label_balance"] < 0.65


# -- corpus input ----------------------------------------------------------------------------
def test_sentence_splitter_korean_and_english():
    ko = "지미 카터는 조지아주에서 태어났다. 조지아 공과대학교를 졸업하였다! 정말요? 네."
    assert split_sentences(ko) == ["지미 카터는 조지아주에서 태어났다.", "조지아 공과대학교를 졸업하였다!", "정말요?", "네."]
    en = "Mr. Smith went to e.g. Washington. He arrived at 3.30 p.m. Then J. R. Tolkien wrote."
    assert split_sentences(en) == ["Mr. Smith went to e.g. Washington.", "He arrived at 3.30 p.m. Then J. R. Tolkien wrote."] or \
        split_sentences(en)[0] == "Mr. Smith went to e.g. Washington."


def test_readers_for_every_format(tmp_path):
    (tmp_path / "a.txt").write_text("First doc. Two sentences.\nSecond line.\n\nSecond doc here.\n", encoding="utf-8")
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "wiki_00").write_text(
        '<doc id="1" url="u" title="카터">\n카터\n\n카터는 태어났다. 그는 졸업하였다.\n</doc>\n'
        '<doc id="2" url="u" title="B">\nB\n\nB is a letter.\n</doc>\n', encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "One. Two.\nThree."}) + "\n" + "not json\n")
    report = CorpusReport()
    docs = list(iter_documents(resolve_files(tmp_path / "a.txt"), report))
    assert docs == [["First doc.", "Two sentences.", "Second line."], ["Second doc here."]]
    docs = list(iter_documents(resolve_files(tmp_path / "wiki"), report))
    assert docs == [["카터는 태어났다.", "그는 졸업하였다."], ["B is a letter."]]  # titles dropped
    docs = list(iter_documents(resolve_files(str(tmp_path / "*.jsonl.gz")), report))
    assert docs == [["One.", "Two.", "Three."]]
    assert report.skipped_lines == 1 and "c.jsonl.gz:2" in report.first_skipped


def test_non_utf8_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes("좋은 문장이다.\n".encode() + "깨진 줄\n".encode("cp949") + b"Fine line.\n")
    report = CorpusReport()
    docs = list(iter_documents([path], report))
    assert docs == [["좋은 문장이다.", "Fine line."]]
    assert report.skipped_lines == 1 and report.first_skipped.startswith(f"{path}:2")


def test_bad_corpora_get_clear_errors(tmp_path, cache_dir):
    with pytest.raises(CorpusError, match="corpus file not found: .*nope.txt"):
        build_dataset(DataConfig(**SMALL), tmp_path / "nope.txt", cache_dir)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="empty.txt"):
        build_dataset(DataConfig(**SMALL), empty, cache_dir)
    cp949 = tmp_path / "korean-cp949.txt"
    cp949.write_bytes("한국어 문장입니다.\n".encode("cp949") * 3)
    with pytest.raises(CorpusError, match="korean-cp949.txt is not UTF-8"):
        build_dataset(DataConfig(**SMALL), cp949, cache_dir)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("A short doc.\n\nAnother one.\n\nA third.\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match="too small for a vocabulary of 600: it supports at most \\d+ pieces; "
                                             "use --vocab-size \\d+ or less"):
        build_dataset(DataConfig(**SMALL), tiny, cache_dir)
    with pytest.raises(ValueError, match="max_length=4 is below the minimum of 8"):
        DataConfig(max_length=4)
    with pytest.raises(ValueError, match="packing='full-sentences'.*sentence_task='nsp'"):
        DataConfig(packing="full-sentences", sentence_task="nsp")


def test_corpus_diagnostics_name_the_real_cause(tmp_path, cache_dir):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café crème brûlée\n\n\nà la carte\n\n".encode("latin-1") * 3)
    with pytest.raises(CorpusError, match="no UTF-8 text: .* the first at .*latin1.txt:1.*iconv"):
        build_dataset(DataConfig(**SMALL), latin1, cache_dir)
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(CorpusError, match="weights.bin is a binary file"):
        build_dataset(DataConfig(**SMALL), binary, cache_dir)
    gz = tmp_path / "part.txt.gz"
    gz.write_bytes(gzip.compress(("문장입니다. " * 20 + "\n\n").encode() * 200)[:300])
    with pytest.raises(CorpusError, match="part.txt.gz is a truncated or corrupt gzip file"):
        build_dataset(DataConfig(**SMALL), gz, cache_dir)


def many_characters_corpus(path):
    """250 common syllables carry 99% of the text and 1,000 rare ones the rest: over 600
    distinct characters at SentencePiece's default coverage, 250 at 98%."""
    rng = np.random.default_rng(0)
    common, rare = [chr(0xAC00 + i) for i in range(250)], [chr(0xB000 + i) for i in range(1000)]
    chars = np.where(rng.random(60_000) < 0.99, rng.choice(common, 60_000), rng.choice(rare, 60_000))
    sents = ["".join(chars[i:i + 12]) + "." for i in range(0, len(chars), 12)]
    path.write_text("\n\n".join("\n".join(sents[i:i + 50]) for i in range(0, len(sents), 50)), encoding="utf-8")
    return path


def test_a_vocabulary_too_small_for_the_characters_names_both_numbers(tmp_path, cache_dir):
    corpus = many_characters_corpus(tmp_path / "many-chars.txt")
    with pytest.raises(TokenizerError, match=r"has \d{3,4} distinct characters at character_coverage=0.9995, more "
                                             r"than vocab_size=600 can hold; use --vocab-size \d+ or more"):
        build_dataset(DataConfig(**SMALL), corpus, cache_dir)
    # automatic coverage fits the characters to the vocabulary instead
    data = build_dataset(DataConfig(**{**SMALL, "character_coverage": 0}), corpus, cache_dir)
    assert data.tokenizer.vocab_size == 600 and 0 < data.stats()["unk_rate"] < 0.02
    counts = character_counts(corpus.read_text(encoding="utf-8").splitlines())
    assert characters_needed(counts) > 600 and characters_needed(counts, 0.98) <= 250
    assert vocab_for(counts, 500) >= characters_needed(counts) + 250 and vocab_for(counts, 500) % 500 == 0


def test_bad_tokenizer_files_and_damaged_caches(tmp_path, corpus_file):
    text = tmp_path / "not-a-model.txt"
    text.write_text("hello\n")
    with pytest.raises(TokenizerError, match="not-a-model.txt is not a SentencePiece model.*omit --tokenizer"):
        build_dataset(DataConfig(**SMALL, tokenizer_path=str(text)), corpus_file, tmp_path / "c")
    cache = tmp_path / "cache"
    first = build_dataset(DataConfig(**SMALL), corpus_file, cache)
    expected = first.collate(first.train, np.arange(4))
    for damaged in [*cache.glob("examples/*/train.ids.bin"), *cache.glob("tokens/*/tokens.bin")]:
        damaged.write_bytes(damaged.read_bytes()[:100])  # a full disk or a killed copy
    with pytest.warns(UserWarning, match="is damaged .*rebuilding it"):
        again = build_dataset(DataConfig(**SMALL), corpus_file, cache)
    got = again.collate(again.train, np.arange(4))
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_korean_wikipedia_whole_words(kowiki, cache_dir):
    data = build_dataset(DataConfig(vocab_size=8000, max_length=128, dupe_factor=1, mask_unit="whole-word"),
                         kowiki, cache_dir)
    s = data.stats()
    assert s["documents"] > 1000 and s["unk_rate"] < 0.01
    pieces = data.tokenizer.pieces(data.train.example(0))
    words = word_units(data.train.example(0).astype(np.int64), data.train.example(0) >= 5, data.tokenizer.word_start)
    assert any(len(w) > 1 for w in words), pieces  # Korean words span several pieces
