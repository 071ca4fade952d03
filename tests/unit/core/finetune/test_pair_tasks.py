"""Downstream fine-tuning: task files and their errors, pair encoding, scores with
intervals, and a tiny generated pair task that a fine-tuned model must learn."""
import random
from pathlib import Path

import pytest
import torch

from core.data import CLS, PAD, SEP
from core.finetune import (
    FinetuneConfig,
    TaskError,
    TaskModel,
    accuracy,
    correlations,
    encode_examples,
    finetune,
    load_task,
    mean_and_se,
    parse_task,
    split_tasks,
    wilson,
)
from core.finetune.encode import batches
from variants import build_model

WORDS = "the of and to in is for that with as on by this be are from or it an at".split()


def write_split(directory: Path, name: str, header: str, rows: list[str], encoding: str = "utf-8") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def keyword_task(directory: Path, seed: int = 0, sizes: tuple[int, int, int] = (400, 100, 200)) -> Path:
    """Pair classification: 'yes' when text_b holds the word "module", 'no' when it holds
    "function" (in a random place, among random words); text_a is noise."""
    rng = random.Random(seed)
    for split, n in zip(("train", "dev", "test"), sizes):
        rows = []
        for _ in range(n):
            y = rng.random() < 0.5
            b = rng.choices(WORDS, k=5)
            b.insert(rng.randrange(6), "module" if y else "function")
            rows.append(f"{' '.join(rng.choices(WORDS, k=6))}\t{' '.join(b)}\t{'yes' if y else 'no'}")
        write_split(directory, f"{split}.tsv", "s1\ts2\ty", rows)
    return directory


def small_tsv_task(directory: Path, dev_name: str = "dev.tsv") -> Path:
    for name in ("train.tsv", dev_name, "test.tsv"):
        write_split(directory, name, "id\tsentence1\tsentence2\tlabel",
                    ["1\ta cat\ta dog\tentailment", "2\tx\ty\tneutral", "3\tp\tq\tcontradiction"])
    return directory


def test_generic_tsv_task_finds_splits_and_orders_labels(tmp_path):
    small_tsv_task(tmp_path, dev_name="task_validation.tsv")
    task = load_task(f"tsv:{tmp_path}:text_a=sentence1,text_b=sentence2,label=label,kind=pair-classification")
    assert task.classes == ["contradiction", "entailment", "neutral"] and task.num_labels == 3  # 3-label NLI
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [3, 3, 3]
    assert task.splits["train"][0].text_a == "a cat" and task.splits["train"][0].label == 1


def test_builtin_question_pair_names_its_classes(tmp_path, monkeypatch):
    for name in ("train.tsv", "validation.tsv", "test.tsv"):
        write_split(tmp_path / "question_pair", name, "question1\tquestion2\tis_duplicate", ["a\tb\t0", "c\td\t1"])
    monkeypatch.setenv("BERT_ABLATE_TASK_DATA", str(tmp_path))
    task = load_task("question_pair")
    assert task.classes == ["different", "same"]
    # is_duplicate 0 means the same meaning in this data set
    assert [task.classes[e.label] for e in task.splits["dev"]] == ["same", "different"]


def test_korsts_is_a_regression_task(tmp_path, monkeypatch):
    header = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"
    for name in ("sts-train.tsv", "sts-dev.tsv", "sts-test.tsv"):
        write_split(tmp_path / "korsts", name, header, ["g\tf\t2012\t0\t4.5\t가\t나", "g\tf\t2012\t1\t0.25\t다\t라"])
    monkeypatch.setenv("BERT_ABLATE_TASK_DATA", str(tmp_path))
    task = load_task("korsts")
    assert task.spec.regression and task.num_labels == 1
    assert [e.label for e in task.splits["test"]] == [4.5, 0.25]


def test_bad_task_files_give_one_line_errors_naming_file_and_column(tmp_path):
    d = small_tsv_task(tmp_path / "ok")
    spec = f"tsv:{d}:text_a=sentence1,text_b=sentence2,label=gold"
    with pytest.raises(TaskError, match=r"train\.tsv: no column 'gold' \(label=gold\); columns: id, sentence1"):
        load_task(spec)
    write_split(d, "test.tsv", "id\tsentence1\tsentence2\tlabel", ["1\ta\tb\tmaybe"])
    with pytest.raises(TaskError, match=r"test\.tsv:2: unknown label 'maybe' in column 'label'; labels seen"):
        load_task(f"tsv:{d}:text_a=sentence1,text_b=sentence2,label=label")
    e = small_tsv_task(tmp_path / "empty")
    write_split(e, "dev.tsv", "id\tsentence1\tsentence2\tlabel", [])
    with pytest.raises(TaskError, match=r"dev\.tsv: the dev split is empty"):
        load_task(f"tsv:{e}:text_a=sentence1,text_b=sentence2,label=label")
    c = small_tsv_task(tmp_path / "cp949")
    write_split(c, "train.tsv", "id\tsentence1\tsentence2\tlabel", ["1\t한국어\tb\tneutral"], encoding="cp949")
    with pytest.raises(TaskError, match=r"train\.tsv: not UTF-8 \(line 2"):
        load_task(f"tsv:{c}:text_a=sentence1,text_b=sentence2,label=label")
    (tmp_path / "nodev").mkdir()
    write_split(tmp_path / "nodev", "train.tsv", "a\tb", ["x\ty"])
    with pytest.raises(TaskError, match=r"no dev file .* found: train\.tsv"):
        load_task(f"tsv:{tmp_path / 'nodev'}:text_a=a,label=b,kind=classification")
    with pytest.raises(ValueError, match="Did you mean 'text_b'"):
        parse_task(f"tsv:{d}:text_a=x,textb=y,label=z")
    with pytest.raises(ValueError, match="unknown task 'korst'. Did you mean 'korsts'"):
        parse_task("korst")


def test_task_lists_split_at_commas_between_tasks_only():
    assert split_tasks("korsts,tsv:/d:text_a=a,text_b=b,label=y,question_pair") == [
        "korsts", "tsv:/d:text_a=a,text_b=b,label=y", "question_pair"]


def test_pair_encoding_follows_the_variant(small_data, tmp_path):
    task = load_task(f"tsv:{small_tsv_task(tmp_path)}:text_a=sentence1,text_b=sentence2,label=label")
    tok = small_data.tokenizer
    enc = encode_examples(task.splits["train"][:1], tok, max_length=64, type_ids=True)
    a, b = tok.encode(["a cat", "a dog"])
    assert enc.ids[0] == [CLS, *a, SEP, *b, SEP]
    assert enc.types[0] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert encode_examples(task.splits["train"][:1], tok, 64, type_ids=False).types[0] == [0] * len(enc.ids[0])
    long = encode_examples(task.splits["train"][:1], tok, max_length=5, type_ids=True)
    assert len(long.ids[0]) == 5 and long.ids[0][0] == CLS and long.ids[0].count(SEP) == 2
    batch = next(batches(encode_examples(task.splits["train"], tok, 64, True), 3, regression=False))
    assert batch["input_ids"].shape[0] == 3 and bool((batch["input_ids"][batch["attention_mask"] == 0] == PAD).all())


def test_scores_and_their_intervals():
    s = accuracy([1, 0, 1, 1], [1, 1, 1, 1])
    assert (s.value, s.n) == (0.75, 4) and s.low == pytest.approx(0.3006, abs=1e-4)
    assert s.high == pytest.approx(0.9544, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, generator=g).tolist()
    y = [v + 0.5 * w for v, w in zip(x, torch.rand(60, generator=g).tolist())]
    y[:6] = [y[0]] * 6  # ties
    c = correlations(x, y)
    assert c["pearson"].value == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert c["spearman"].value == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert c["spearman"].low < c["spearman"].value < c["spearman"].high and c["pearson"].n == 60
    assert mean_and_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1 / 3 ** 0.5))
    from core.finetune.metrics import chance_level

    assert chance_level([0, 1, 0, 0, 2], regression=False) == 0.6 and chance_level([0.5, 4.0], regression=True) == 0


@pytest.mark.parametrize("variant", ["bert", "roberta", "albert-reformer"])
def test_task_heads_on_every_kind_of_arm(variant):
    extra = {"lsh_bucket_size": 8} if "reformer" in variant else {}
    model = build_model(variant, size="tiny", vocab_size=600, max_position_embeddings=64, **extra)
    ids = torch.randint(5, 600, (3, 21))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    for labels in (torch.tensor([0, 2, 1]), torch.tensor([0.5, 4.0, 2.0])):
        head = TaskModel(model, num_labels=3 if labels.dtype == torch.long else 1)
        loss, logits = head(ids, mask, torch.zeros_like(ids), labels=labels)
        loss.backward()
        assert logits.shape == ((3, 3) if head.num_labels == 3 else (3,)) and torch.isfinite(loss)


def test_finetuning_learns_a_generated_pair_task(small_data, tmp_path):
    task = load_task(f"tsv:{keyword_task(tmp_path)}:text_a=s1,text_b=s2,label=y,kind=pair-classification")
    torch.manual_seed(0)  # the "pretrained" weights: random, but the same whatever ran before
    model = build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64)
    cfg = FinetuneConfig(max_steps=60, batch_size=16, lr=1e-3, max_length=32, device="cpu", seed=0, patience=0)
    result = finetune(model, small_data.tokenizer, task, cfg)
    assert result.metric == "accuracy" and result.test.n == 200
    assert result.test.value >= 0.9 and result.test.low > 0.5   # chance is 0.5
    assert result.dev == max(v for _, v in result.dev_curve)      # the reported checkpoint is the best dev one
    short = cfg.replace(max_steps=6, eval_every=3)
    first, again = (finetune(model, small_data.tokenizer, task, short) for _ in range(2))
    assert again.dev_curve == first.dev_curve and again.test == first.test  # seeded: the same run twice


def regression_task(directory: Path, seed: int = 0, sizes: tuple[int, int, int] = (60, 20, 30)) -> Path:
    """Pair regression: 1.0 when text_b holds "module", 0.0 when it holds "function"."""
    rng = random.Random(seed)
    for split, n in zip(("train", "dev", "test"), sizes):
        rows = []
        for _ in range(n):
            y = rng.random() < 0.5
            rows.append(f"{' '.join(rng.choices(WORDS, k=4))}\t{'module' if y else 'function'} of\t{float(y)}")
        write_split(directory, f"{split}.tsv", "s1\ts2\ty", rows)
    return directory


def test_a_correlation_of_constant_predictions_is_undefined_not_zero():
    import json
    import math

    from core.finetune.metrics import CONSTANT_GOLD, CONSTANT_PREDICTIONS

    c = correlations([0.3] * 8, [0, 1, 2, 3, 4, 5, 6, 7])
    for metric in ("pearson", "spearman"):
        s = c[metric]
        assert math.isnan(s.value) and not s.defined and s.note == CONSTANT_PREDICTIONS == \
            "undefined: the predictions are constant"
        assert str(s) == f"{metric} undefined: the predictions are constant (n=8)"
        assert json.dumps(s.to_dict(), allow_nan=False) and s.to_dict()["value"] is None
    assert correlations([1, 2, 3, 4], [2.0] * 4)["spearman"].note == CONSTANT_GOLD
    assert correlations([1, 2, 3, 5], [1, 2, 3, 4])["pearson"].defined
    assert mean_and_se([0.5, float("nan"), 0.7]) == pytest.approx((0.6, 0.1))   # the defined seeds only
    assert all(math.isnan(v) for v in mean_and_se([float("nan")] * 2))


def test_seeds_with_constant_predictions_are_counted_never_averaged_as_zero(small_data, tmp_path, monkeypatch):
    """Seed 0's model predicts one score for everything (a collapsed regression head)."""
    import json

    import core.finetune.loop as loop
    from core.finetune import finetune_seeds

    real = loop.predict
    monkeypatch.setattr(loop, "predict", lambda model, enc, cfg, regression, device: [2.5] * len(enc.ids)
                        if cfg.seed == 0 else real(model, enc, cfg, regression, device))
    task = load_task(f"tsv:{regression_task(tmp_path)}:text_a=s1,text_b=s2,label=y,kind=pair-regression")
    model = build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64)
    cfg = FinetuneConfig(max_steps=4, eval_every=2, batch_size=8, max_length=32, device="cpu")
    summary = finetune_seeds(model, small_data.tokenizer, task, cfg, seeds=2)
    first, second = summary.results
    assert not first.test.defined and first.test.note == "undefined: the predictions are constant"
    assert second.test.defined and summary.undefined == 1
    assert summary.mean == pytest.approx(second.test.value) and summary.se == 0.0   # seed 1 alone, not (0 + x) / 2
    assert "over the 1 of 2 seeds whose score is defined; 1 undefined (undefined: the predictions are constant)" \
        in str(summary) and "CI undefined" in str(summary)
    d = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert d["values"][0] is None and d["undefined"] == 1 and d["test_all"]["pearson"][0] is None
    monkeypatch.setattr(loop, "predict", lambda model, enc, cfg, regression, device: [2.5] * len(enc.ids))
    every = finetune_seeds(model, small_data.tokenizer, task, cfg, seeds=2)
    assert every.undefined == 2 and str(every).startswith(f"{task.name} spearman undefined on all 2 seed(s) "
                                                          "(undefined: the predictions are constant; n=30")
    assert json.dumps(every.to_dict(), allow_nan=False) and every.to_dict()["mean"] is None
