"""Parity with HF transformers: identical parameter counts and logits, both directions."""
import pytest
import torch

transformers = pytest.importorskip("transformers")

from core.interop import from_hf, to_hf  # noqa: E402
from core.model import PretrainingModel  # noqa: E402
from variants import build_model, get_config  # noqa: E402

SMALL = dict(vocab_size=101, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=48, max_position_embeddings=40, hidden_dropout_prob=0.1,
             attention_probs_dropout_prob=0.1)


def hf_models():
    tf = transformers
    yield "bert", tf.BertForPreTraining(tf.BertConfig(**SMALL))
    yield "bert-gelu-new", tf.BertForPreTraining(tf.BertConfig(**{**SMALL, "hidden_act": "gelu_new"}))
    yield "bert-mlm", tf.BertForMaskedLM(tf.BertConfig(**SMALL))
    yield "albert-1group", tf.AlbertForPreTraining(tf.AlbertConfig(**SMALL, embedding_size=16))
    yield "albert-2groups", tf.AlbertForPreTraining(
        tf.AlbertConfig(**{**SMALL, "num_hidden_layers": 4}, embedding_size=16, num_hidden_groups=2))
    yield "roberta", tf.RobertaForMaskedLM(tf.RobertaConfig(**{**SMALL, "max_position_embeddings": 42}))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def batch(vocab, seed=0, B=3, T=17):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 12:] = 0  # right padding on one row
    ids[1, 12:] = 1  # RoBERTa's pad id; harmless elsewhere
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, 9:] = 1
    return ids, mask, types


def hf_logits(hf, ids, mask, types):
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if hf.config.type_vocab_size > 1:
        kwargs["token_type_ids"] = types
    out = hf(**kwargs)
    mlm = out.prediction_logits if hasattr(out, "prediction_logits") else out.logits
    sent = getattr(out, "seq_relationship_logits", None)
    if sent is None:
        sent = getattr(out, "sop_logits", None)
    return mlm, sent


def compare(ours, hf, seed=0):
    ours.eval(), hf.eval()
    ids, mask, types = batch(hf.config.vocab_size, seed)
    with torch.no_grad():
        mlm_hf, sent_hf = hf_logits(hf, ids, mask, types)
        labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))  # predict every real token
        out = ours(ids, attention_mask=mask,
                   token_type_ids=types if hf.config.type_vocab_size > 1 else None, mlm_labels=labels)
    torch.testing.assert_close(out.mlm_logits, mlm_hf[mask.bool()], atol=1e-4, rtol=1e-4)
    assert (out.sentence_logits is None) == (sent_hf is None)
    if sent_hf is not None:
        torch.testing.assert_close(out.sentence_logits, sent_hf, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,hf", list(hf_models()), ids=[n for n, _ in hf_models()])
def test_from_hf_matches_counts_and_logits(name, hf):
    ours = from_hf(hf)
    assert ours.parameter_counts()["unique"] == n_params(hf)
    compare(ours, hf)


@pytest.mark.parametrize("name,hf", list(hf_models()), ids=[n for n, _ in hf_models()])
def test_to_hf_round_trip(name, hf):
    torch.manual_seed(1)
    ours = PretrainingModel(from_hf(hf).cfg)  # fresh random weights of our own
    exported = to_hf(ours)
    assert n_params(exported) == ours.parameter_counts()["unique"]
    compare(ours, exported, seed=1)


@pytest.mark.parametrize("variant", ["bert", "albert", "roberta"])
def test_variants_export_to_hf(variant):
    torch.manual_seed(0)
    ours = build_model(variant, size="mini", vocab_size=120, max_position_embeddings=64)
    exported = to_hf(ours)
    # our RoBERTa keeps fairseq's 2-row position offset with pad id 0; HF needs only 1
    unused_rows = ours.cfg.position_offset - (ours.cfg.pad_token_id + 1) if variant == "roberta" else 0
    assert n_params(exported) == ours.parameter_counts()["unique"] - unused_rows * ours.cfg.embedding_size
    compare(ours, exported)


def test_to_hf_refuses_what_hf_cannot_hold():
    with pytest.raises(ValueError, match="attention='lsh'"):
        to_hf(build_model("reformer", size="tiny", vocab_size=50))
    with pytest.raises(ValueError, match="sharing='attention'"):
        to_hf(build_model("albert", size="tiny", vocab_size=50, sharing="attention", num_groups=1))


def count_on_meta(cls, cfg):
    with torch.device("meta"):
        return n_params(cls(cfg))


@pytest.mark.parametrize("variant,size,vocab,hf_cls,hf_cfg", [
    ("bert", "base", 30522, "BertForPreTraining", dict()),
    ("bert", "tiny", 30522, "BertForPreTraining", dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)),
    ("bert", "mini", 30522, "BertForPreTraining", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)),
    ("bert", "small", 30522, "BertForPreTraining", dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)),
    ("bert", "medium", 30522, "BertForPreTraining", dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048)),
    ("albert", "base", 30000, "AlbertForPreTraining", dict(embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072)),
    ("roberta", "base", 50265, "RobertaForMaskedLM", dict(max_position_embeddings=514, pad_token_id=1, type_vocab_size=1)),
])
def test_published_parameter_counts(variant, size, vocab, hf_cls, hf_cfg):
    """Our named variants hold exactly as many parameters as the published HF models."""
    tf = transformers
    config_cls = {"Bert": tf.BertConfig, "Albert": tf.AlbertConfig, "Roberta": tf.RobertaConfig}
    cfg_cls = next(v for k, v in config_cls.items() if hf_cls.startswith(k))
    expected = count_on_meta(getattr(tf, hf_cls), cfg_cls(vocab_size=vocab, **hf_cfg))
    with torch.device("meta"):
        ours = build_model(variant, size=size, vocab_size=vocab)
    assert ours.parameter_counts()["unique"] == expected


def test_published_counts_in_millions():
    counts = {}
    for v, s, V in [("bert", "base", 30522), ("albert", "base", 30000), ("roberta", "base", 50265),
                    ("bert", "tiny", 30522), ("bert", "mini", 30522), ("bert", "small", 30522), ("bert", "medium", 30522)]:
        with torch.device("meta"):
            counts[v, s] = round(build_model(v, size=s, vocab_size=V).parameter_counts()["unique"] / 1e6, 1)
    assert counts == {("bert", "base"): 110.1, ("albert", "base"): 11.8, ("roberta", "base"): 124.7,
                      ("bert", "tiny"): 4.4, ("bert", "mini"): 11.3, ("bert", "small"): 29.1,
                      ("bert", "medium"): 41.7}
    assert get_config("albert-base").num_groups == 1
