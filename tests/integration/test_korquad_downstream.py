"""KorQuAD-style span QA end to end: `run --downstream korquad:FILE` on a small SQuAD-shaped file
written here, its rows (exact match and F1 on 0-100, intervals, chance level, paired
differences), the official-format predictions.json that re-scores to the row's numbers
through a copy of KorQuAD's evaluator, and `finetune --task korquad:FILE`."""
import json
import math
import re
import string
from collections import Counter

import pytest

from ablations.__main__ import main as cli
from ablations.analysis.downstream import downstream_difference
from ablations.rundir import read_rows
from core.finetune import load_task, squad_scores, write_split
from core.finetune.span_qa import first_words_baseline
from tests.unit.core.finetune.test_span_qa import squad_file

TOML = '''
name = "qa"
description = "unshared vs shared attention, fine-tuned on span QA"
base = "bert"

[[arms]]
name = "base"

[[arms]]
name = "shared"
description = "attention shared across layers"
overrides = { "model.sharing" = "attention", "model.num_groups" = 1 }
'''


# KorQuAD 1.0's evaluate-v1.0.py (korquad.github.io), its scoring as published
def _normalize_answer(s):
    def remove_(text):
        for ch in ("'", '"', "《", "》", "<", ">", "〈", "〉", r"\(", r"\)", "‘", "’"):
            text = re.sub(ch, " ", text)
        return text

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return " ".join(remove_punc(remove_(s).lower()).split())


def _f1_score(prediction, ground_truth):
    prediction_char = [c for tok in _normalize_answer(prediction).split() for c in tok]
    ground_truth_char = [c for tok in _normalize_answer(ground_truth).split() for c in tok]
    num_same = sum((Counter(prediction_char) & Counter(ground_truth_char)).values())
    if num_same == 0:
        return 0
    precision, recall = num_same / len(prediction_char), num_same / len(ground_truth_char)
    return (2 * precision * recall) / (precision + recall)


def _official_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                golds = [a["text"] for a in qa["answers"]]
                exact_match += max(_normalize_answer(predictions[qa["id"]]) == _normalize_answer(g) for g in golds)
                f1 += max(_f1_score(predictions[qa["id"]], g) for g in golds)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


@pytest.mark.slow
def test_run_with_downstream_korquad_then_finetune(tmp_path, corpus_file, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    monkeypatch.setattr("ablations.run.arm.measure", lambda *a, **k: {"status": "ok", "peak_mem_bytes": 2**20})
    said = lambda stream="out": " ".join(getattr(capsys.readouterr(), stream).split())  # rich wraps lines
    spec = f"korquad:{squad_file(tmp_path / 'tiny.json')}"
    (tmp_path / "qa.toml").write_text(TOML, encoding="utf-8")
    run = tmp_path / "run"
    common = [str(tmp_path / "qa.toml"), "--out", str(run), "--quick", "--corpus", str(corpus_file), "--no-progress"]

    (tmp_path / "bad.json").write_text('{"data": {}}', encoding="utf-8")   # checked before any pretraining
    assert cli(["run", *common, "--downstream", f"korquad:{tmp_path / 'bad.json'}"]) == 2
    assert "bad.json: not SQuAD-shaped: 'data' is an object, not a list of articles" in said("err")
    assert not (run / "results.jsonl").exists()

    assert cli(["run", *common, "--downstream", spec, "--downstream-steps", "8"]) == 0
    task = load_task(spec)
    test_ids = {ex.id for ex in task.splits["test"]}
    chance = first_words_baseline(task.splits["train"], task.splits["test"])
    official = write_split(spec, "test", tmp_path / "test-split.json")
    dataset = json.loads(official.read_text(encoding="utf-8"))["data"]
    rows = {r.arm: r for r in read_rows(run / "results.jsonl")}
    for arm in ("base", "shared"):
        r = rows[arm]
        assert r.status == "ok" and not r.downstream_error
        em, f1 = r.downstream["tiny_exact_match"], r.downstream["tiny_f1"]
        for metric, s in (("exact_match", em), ("f1", f1)):
            assert (s.of_task, s.metric, s.scale, s.n, s.label) == ("tiny", metric, 100, 18, f"tiny {metric}")
            assert s.chance == pytest.approx(chance[metric]) and s.ci[0] <= s.score <= s.ci[1]
            assert s.predictions == em.predictions and len(s.per_example[1]) == 18
        # the predictions file: official format, under a path naming the task, recorded in the row
        path = run / em.predictions[0]
        assert em.predictions == (f"arms/{arm}/seed-0/downstream/tiny/finetune-seed-0/predictions.json",)
        predictions = json.loads(path.read_text(encoding="utf-8"))
        assert set(predictions) == test_ids and all(isinstance(v, str) for v in predictions.values())
        # it re-scores to the row's numbers with the official evaluator on the test split's articles
        assert _official_evaluate(dataset, predictions) == pytest.approx({"exact_match": em.score, "f1": f1.score})
        rescored = squad_scores(predictions, task.splits["test"])
        assert (rescored.scores["f1"].low, rescored.scores["f1"].high) == pytest.approx(f1.ci)
        assert rescored.per_question["f1"] == pytest.approx(list(f1.per_example[1]), abs=0.005)

    # shared vs base: paired over the same 18 test questions
    d = downstream_difference(rows["shared"], rows["base"], "tiny_f1")
    a, b = rows["shared"].downstream["tiny_f1"].per_example[1], rows["base"].downstream["tiny_f1"].per_example[1]
    diffs = [x - y for x, y in zip(a, b)]
    mean = sum(diffs) / 18
    pse = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 17 / 18)
    assert d.paired and d.label == "tiny f1" and d.noise == pytest.approx(2 * pse)   # one seed: no seed noise
    report = " ".join((run / "report.md").read_text(encoding="utf-8").split())
    assert "| tiny (exact_match) | tiny (f1) |" in report and "a bootstrap over questions" in report
    assert f"Chance level of span QA (always answering the passage's first words, as many as a training answer has " \
           f"on average): tiny exact_match {chance['exact_match']:.2f}, tiny f1 {chance['f1']:.2f}." in report
    assert f"tiny f1 {d.diff:+.2f}" in report and "arms/base/seed-0/downstream/tiny/finetune-seed-0/predictions.json" \
        in report

    capsys.readouterr()
    assert cli(["finetune", str(run), "base", "--task", spec, "--steps", "4", "--seeds", "1", "--max-length", "48",
                "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = run / "arms" / "base" / "seed-0" / "downstream" / "tiny" / "finetune-seed-0" / "predictions.json"
    assert got["metric"] == "f1" and got["n"] == 18 and set(got["test_all"]) == {"exact_match", "f1"}
    assert got["predictions"] == [str(written)]
    assert _official_evaluate(dataset, json.loads(written.read_text(encoding="utf-8"))) == pytest.approx(
        {"exact_match": got["test_all"]["exact_match"][0], "f1": got["values"][0]})
