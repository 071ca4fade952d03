"""Today's encoder as components (issue 32): rotary positions, GLU feed-forwards, RMSNorm and
bias-free layers, local/global attention, the evaluation masking rate, and ModernBERT itself,
checked against HF transformers' ModernBERT and a dense reference."""
import json

import pytest
import torch

from core.model import ModelConfig, PretrainingModel
from core.model.config import auto_intermediate
from core.model.local import dense_window_mask, window_attention
from variants import build_model, get_config

MODERN = dict(norm="pre", bias=False, norm_bias=False, first_layer_prenorm=False, positions="rope", ffn="glu",
              global_every=3, local_window=16, rope_theta=160_000.0, rope_theta_local=10_000.0, type_vocab_size=0,
              sentence_head=False, hidden_dropout=0.0, attention_dropout=0.0)


def padded_batch(vocab: int, lengths=(100, 70, 30), T: int = 100, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (len(lengths), T), generator=g)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return ids, mask


# -- the fields ------------------------------------------------------------------------------------
def test_new_fields_leave_older_configs_as_they_were_written():
    """A BERT config's dict (its checkpoints' identity, rows' keys, exports) gains no key."""
    assert set(ModelConfig().to_dict()) == {
        "vocab_size", "max_position_embeddings", "position_offset", "type_vocab_size", "pad_token_id",
        "hidden_size", "num_layers", "num_heads", "intermediate_size", "embedding_size", "attention", "norm",
        "activation", "ffn_chunks", "sharing", "num_groups", "reversible", "lsh_bucket_size", "lsh_n_hashes",
        "sentence_head", "hidden_dropout", "attention_dropout", "layer_norm_eps", "initializer_range"}
    cfg = ModelConfig(**MODERN)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("fields, message", [
    ({"positions": "alibi"}, "unknown value for positions 'alibi'"),
    ({"ffn": "moe"}, "unknown value for ffn 'moe'"),
    ({"norm_layer": "batchnorm"}, "unknown value for norm_layer"),
    ({"global_every": 0}, "global_every must be >= 1"),
    ({"first_layer_prenorm": False}, "first_layer_prenorm=False leaves out layer 0's pre-attention norm"),
    ({"positions": "rope", "hidden_size": 24, "num_heads": 8}, "head size 3"),
    ({"attention": "lsh", "global_every": 2, "sharing": "all", "num_groups": 1, "norm": "pre"}, "cannot serve both"),
])
def test_bad_combinations_are_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_the_glu_width_keeps_the_mlp_parameters():
    """I = 8H/3 rounded up to a multiple of 8: three H x I matrices hold what two H x 4H do."""
    assert [auto_intermediate(h, "glu") for h in (128, 256, 768)] == [344, 688, 2048]
    for size in ("micro", "mini"):
        mlp = build_model("bert", size=size, type_vocab_size=0).parameter_counts()["encoder_unique"]
        glu = build_model("bert", size=size, type_vocab_size=0, ffn="glu").parameter_counts()["encoder_unique"]
        assert abs(glu - mlp) / mlp < 0.01


def test_rmsnorm_and_bias_free_layers_have_no_biases():
    model = build_model("neobert", size="tiny", vocab_size=300)
    assert not [n for n, _ in model.named_parameters() if n.endswith(".bias") and n != "mlm_head.bias"]
    assert any(isinstance(m, torch.nn.RMSNorm) for m in model.modules())


# -- local attention ----------------------------------------------------------------------------------
@pytest.mark.parametrize("half", [1, 5, 16, 40, 99])
def test_window_kernels_equal_a_dense_masked_reference(half):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 100, 8) for _ in range(3))
    keys = torch.ones(3, 100, dtype=torch.bool)
    keys[1, 60:], keys[2, 3:] = False, False
    reference = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=dense_window_mask(keys, 100, half, "cpu"))
    for kernel in ("banded", "flex", "dense"):
        out = window_attention(q, k, v, keys, half, 0.0, kernel)
        assert (out - reference)[keys[:, None, :, None].expand_as(out)].abs().max() < 1e-5, kernel
        assert torch.isfinite(out).all()


def test_the_banded_kernel_differentiates_as_the_dense_one():
    torch.manual_seed(1)
    keys = torch.ones(2, 50, dtype=torch.bool)
    keys[1, 35:] = False
    grads = {}
    for kernel in ("banded", "dense"):
        q, k, v = (torch.randn(2, 2, 50, 8, generator=torch.Generator().manual_seed(i)).requires_grad_()
                   for i in range(3))
        out = window_attention(q, k, v, keys, 6, 0.0, kernel)
        (out * keys[:, None, :, None]).square().sum().backward()
        grads[kernel] = [t.grad for t in (q, k, v)]
    for banded, dense in zip(grads["banded"], grads["dense"]):
        assert torch.isfinite(banded).all() and (banded - dense).abs().max() < 1e-5


def test_a_model_with_local_layers_gives_the_same_hidden_states_with_every_kernel_and_unpadded():
    torch.manual_seed(0)
    model = PretrainingModel(ModelConfig(hidden_size=64, num_heads=2, num_layers=4, vocab_size=120,
                                         max_position_embeddings=128, **MODERN)).eval()
    ids, mask = padded_batch(120)
    real = mask.bool()
    with torch.no_grad():
        outs = {}
        for kernel in ("dense", "banded", "flex"):
            model.local_kernel = kernel
            assert model.local_kernel == kernel
            outs[kernel] = model.encode(ids, mask)
        model.unpad, model.local_kernel = True, "banded"
        outs["unpadded"] = model.encode(ids, mask)
    for name in ("banded", "flex", "unpadded"):
        assert (outs[name] - outs["dense"])[real].abs().max() < 1e-5, name


def test_a_window_as_wide_as_the_sequence_is_full_attention():
    torch.manual_seed(0)
    local = PretrainingModel(ModelConfig(hidden_size=64, num_heads=2, num_layers=3, vocab_size=120,
                                         max_position_embeddings=128, **{**MODERN, "local_window": 200,
                                                                          "rope_theta_local": 0.0})).eval()
    glob = PretrainingModel(local.cfg.replace(global_every=1)).eval()
    glob.load_state_dict(local.state_dict())
    ids, mask = padded_batch(120)
    with torch.no_grad():
        assert (local.encode(ids, mask) - glob.encode(ids, mask))[mask.bool()].abs().max() < 1e-5


# -- HF ModernBERT --------------------------------------------------------------------------------------
tf = pytest.importorskip("transformers", reason="HF parity needs the hf extra")


def hf_modernbert(**kw):
    torch.manual_seed(0)
    cfg = tf.ModernBertConfig(vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                              num_attention_heads=4, local_attention=16, max_position_embeddings=256, pad_token_id=0,
                              bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, **kw)
    return tf.ModernBertForMaskedLM(cfg).eval()


@pytest.mark.parametrize("kw", [{}, {"attention_bias": True, "mlp_bias": True, "classifier_bias": True,
                                     "norm_bias": True, "hidden_activation": "gelu_pytorch_tanh",
                                     "classifier_activation": "gelu_pytorch_tanh"}])
def test_from_hf_and_to_hf_agree_with_modernbert_on_padded_batches_longer_than_the_window(kw):
    from core.interop import from_hf, to_hf

    hf = hf_modernbert(**kw)
    ours = from_hf(hf).eval()
    assert ours.cfg.global_every == 3 and ours.cfg.local_window == 16
    assert ours.parameter_counts()["unique"] == sum(p.numel() for p in hf.parameters())
    ids, mask = padded_batch(500)
    real = mask.bool()
    with torch.no_grad():
        theirs, mine = hf(input_ids=ids, attention_mask=mask).logits, ours(ids, attention_mask=mask).mlm_logits
        assert (theirs - mine)[real].abs().max() < 1e-4
        back = to_hf(ours)(input_ids=ids, attention_mask=mask).logits
        assert (back - mine)[real].abs().max() < 1e-4


def test_modernbert_base_has_hf_modernbert_bases_parameter_count():
    ours = build_model("modernbert", vocab_size=50368, num_layers=22, hidden_size=768, num_heads=12,
                       intermediate_size=1152).parameter_counts()["unique"]
    with torch.device("meta"):
        theirs = sum(p.numel() for p in tf.ModernBertForMaskedLM(tf.ModernBertConfig()).parameters())
    assert ours == theirs == 149_655_232


def test_a_modernbert_arm_exports_as_an_hf_modernbert_directory(tmp_path, small_data):
    from core.interop import export_arm

    torch.manual_seed(0)
    model = build_model("modernbert", size="tiny", vocab_size=small_data.tokenizer.vocab_size, local_window=16,
                        max_position_embeddings=64).eval()
    done = export_arm(model, small_data.tokenizer.path, tmp_path / "mb", fmt="auto")
    assert done.format == "hf"
    config = json.loads((tmp_path / "mb" / "config.json").read_text())
    assert config["model_type"] == "modernbert" and config["layer_types"] == ["full_attention", "sliding_attention"]
    hf = tf.AutoModelForMaskedLM.from_pretrained(tmp_path / "mb").eval()
    tok = tf.AutoTokenizer.from_pretrained(tmp_path / "mb")
    text = "Return the number of items in a container, counting every nested one."
    ids = torch.tensor([tok(text)["input_ids"]])
    assert tok(text)["input_ids"] == [2, *small_data.tokenizer.encode([text])[0], 3]
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - model(ids).mlm_logits).abs().max() < 1e-4


def test_what_hf_modernbert_cannot_hold_is_refused_with_the_reason():
    from core.interop.hf import export_problems

    problems = export_problems(get_config("modernbert", "tiny", attention="lsh", lsh_bucket_size=16))
    assert problems == ["attention='lsh' (needs 'full')"]
    assert "positions='learned' (needs 'rope')" in export_problems(get_config("reformer", "tiny"))


# -- data: the evaluation masking rate ------------------------------------------------------------------------
def test_held_out_sets_are_masked_at_15_percent_whatever_the_training_rate(corpus_file, cache_dir):
    from core.data import DataConfig, build_dataset

    base = dict(vocab_size=600, max_length=64, dupe_factor=1, max_eval_examples=100, masking="dynamic",
                packing="full-sentences", sentence_task="none")
    at15 = build_dataset(DataConfig(**base), corpus_file, cache_dir)
    at30 = build_dataset(DataConfig(**base, mask_prob=0.3), corpus_file, cache_dir)
    for name in at15.evals:
        a, b = at15.evals[name], at30.evals[name]
        assert all((x == y).all() for x, y in zip(a.masks[0], b.masks[0])), name
    assert "eval_mask_prob" not in DataConfig(**base).to_dict()  # older configs keep their cache keys


# -- the ablations ----------------------------------------------------------------------------------------------
def test_the_modern_ladder_ends_at_the_modernbert_variant_and_no_arm_is_its_predecessors_twin():
    from ablations.plan import RunConfig, resolve_arm, settle
    from ablations.specs import get_ablation

    for name in ("modern", "revisited", "masking_rate"):
        spec = get_ablation(name)
        for asked in (RunConfig(), RunConfig(quick=True)):
            config = settle(spec, asked)
            res = {a.name: resolve_arm(spec, a, config, "fp") for a in spec.arms}
            for arm in spec.arms[1:]:
                assert res[arm.name].key != res[spec.reference_of(arm).name].key, (name, arm.name)
    spec = get_ablation("modern")
    top = resolve_arm(spec, spec.arms[-1], settle(spec, RunConfig()), "fp")
    assert top.model == get_config("modernbert", "micro", vocab_size=4000, local_window=128 // 8)
    assert top.data.mask_prob == 0.3 and top.data.sentence_task == "none"


def test_a_window_that_covers_the_sequence_makes_an_arm_its_predecessors_twin():
    from ablations.plan import RunConfig, resolve_arm, settle
    from ablations.specs import AblationSpec, Arm

    spec = AblationSpec("w", "", "modernbert", (Arm("global", {"model.global_every": 1}),
                                                Arm("wide", {"model.local_window": 512})))
    config = settle(spec, RunConfig(seq_len=128))
    a, b = (resolve_arm(spec, arm, config, "fp") for arm in spec.arms)
    assert a.key == b.key and "covers 128 tokens: every layer is global" in b.described
