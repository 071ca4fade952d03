"""The unigram reference: when has a model learned anything from context, by its loss?"""
import math
from types import SimpleNamespace

import pytest
import torch

from ablations.analysis.verdicts import collect
from ablations.rows import Row
from core.model import IGNORE_INDEX
from core.train.evaluation import evaluate, unigram_reference
from variants import build_model


def test_unigram_entropy_of_hand_made_masked_tokens():
    labels = torch.tensor([1, 1, 2, 3])  # p = 1/2, 1/4, 1/4
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    unigram_nll = torch.tensor([math.log(2), math.log(2), math.log(4), math.log(4)], dtype=torch.float64)
    got = unigram_reference(labels, unigram_nll)  # no training prior: the entropy is the reference
    assert got["eval_mlm_unigram_entropy"] == pytest.approx(expected, abs=1e-12)
    assert got["eval_mlm_unigram_gap"] == pytest.approx(0.0, abs=1e-12)
    # a loss 0.3 nats below the unigram loss on every token: gap -0.3, no noise (every difference equal)
    better = unigram_reference(labels, unigram_nll - 0.3)
    assert better["eval_mlm_unigram_gap"] == pytest.approx(-0.3) and better["eval_mlm_unigram_gap_se"] < 1e-12


def test_a_model_predicting_the_unigram_distribution_scores_exactly_its_entropy(small_data):
    labels = torch.cat([b["mlm_labels"][b["mlm_labels"] != IGNORE_INDEX] for b in small_data.eval_batches("mlm", 32)])
    vocab = small_data.tokenizer.vocab_size
    freq = torch.bincount(labels, minlength=vocab).double()
    log_p = (freq / freq.sum()).clamp_min(1e-300).log().float()
    model = build_model("roberta", size="tiny", vocab_size=vocab)

    def context_free(input_ids, attention_mask=None, token_type_ids=None, mlm_labels=None, **_):
        picked = int((mlm_labels != IGNORE_INDEX).sum())
        return SimpleNamespace(mlm_logits=log_p.expand(picked, vocab), sentence_loss=None)

    model.forward = context_free
    scores = evaluate(model, small_data, torch.device("cpu"))
    p = freq[freq > 0] / freq.sum()
    assert scores["eval_mlm_unigram_entropy"] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-9)
    assert scores["eval_mlm_loss"] == pytest.approx(scores["eval_mlm_unigram_entropy"], abs=1e-5)
    assert scores["eval_mlm_acc"] == pytest.approx(scores["eval_mlm_majority_acc"])  # it always says the mode
    # the reference of the stage test is the training split's unigram on the same tokens:
    # a model that predicts exactly that is at gap 0; the held-out set's own is better than it
    prior = torch.as_tensor(small_data.label_log_probs(), dtype=torch.float32)
    model.forward = lambda input_ids, attention_mask=None, token_type_ids=None, mlm_labels=None, **_: SimpleNamespace(
        mlm_logits=prior.expand(int((mlm_labels != IGNORE_INDEX).sum()), vocab), sentence_loss=None)
    trained = evaluate(model, small_data, torch.device("cpu"))
    assert trained["eval_mlm_loss"] == pytest.approx(trained["eval_mlm_unigram_xent"], abs=1e-5)
    assert abs(trained["eval_mlm_unigram_gap"]) < 1e-5
    assert trained["eval_mlm_unigram_xent"] > trained["eval_mlm_unigram_entropy"]


def test_an_arm_leaves_the_unigram_stage_only_beyond_noise():
    def row(arm, gap, se, seed=0):
        return Row.from_json({"arm": arm, "seed": seed, "status": "ok", "eval_mlm_unigram_gap": gap,
                              "eval_mlm_unigram_gap_se": se})

    arms = collect([row("learns", -0.2, 0.02), row("stuck", -0.02, 0.02), row("old", None, None),
                    row("two", -0.05, 0.02), row("two", -0.07, 0.02, seed=1)])
    assert arms["learns"].left_unigram_stage() is True
    assert arms["stuck"].left_unigram_stage() is False       # -0.02 is within ±0.039
    assert arms["old"].left_unigram_stage() is None          # rows from before the reference: not judged here
    gap, noise = arms["two"].unigram_gap()                   # seeds pooled: mean gap, combined noise
    assert gap == pytest.approx(-0.06) and noise == pytest.approx(1.959963984540054 * math.sqrt(2) * 0.02 / 2)
    assert arms["two"].left_unigram_stage() is True


def test_a_sentence_task_records_the_share_of_its_commoner_class(small_data):
    """'Above chance' must beat always answering the commoner class of the held-out pairs,
    which a few hundred pairs rarely split 50/50: its share is recorded beside the accuracy."""
    labels = torch.cat([b["sentence_labels"] for b in small_data.eval_batches("nsp", 32)]).tolist()
    share = max(labels.count(0), labels.count(1)) / len(labels)
    model = build_model("bert", size="tiny", vocab_size=small_data.tokenizer.vocab_size)
    scores = evaluate(model, small_data, torch.device("cpu"))
    assert scores["eval_nsp_n"] == len(labels) and scores["eval_nsp_majority"] == pytest.approx(share)
