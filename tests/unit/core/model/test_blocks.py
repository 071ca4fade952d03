"""Invariants of the building blocks: attention kinds, sharing, reversible layers, gradients."""
import pytest
import torch
from reformer_pytorch.reformer_pytorch import FullQKAttention

from core.model import ModelConfig, PretrainingModel
from core.model.attention import LSHSelfAttention, SharedQKAttention
from variants import build_model, list_variants

TINY = dict(vocab_size=97, hidden_size=32, num_heads=4, num_layers=4, max_position_embeddings=64,
            lsh_bucket_size=8, hidden_dropout=0.0, attention_dropout=0.0)


def make_batch(vocab=97, B=2, T=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, T - 5:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 2:T:4] = ids[:, 2:T:4]
    labels[0, T - 5:] = -100
    return dict(input_ids=ids, attention_mask=mask, mlm_labels=labels,
                sentence_labels=torch.tensor([0, 1])[:B])


def test_shared_qk_equals_reformer_full_qk_attention():
    cfg = ModelConfig(**TINY, attention="full-shared-qk")
    attn = SharedQKAttention(cfg).eval()
    x = torch.randn(2, 10, 32)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    ours = attn(x, mask)
    qk = attn.qk(x).view(2, 10, 4, 8).transpose(1, 2).reshape(8, 10, 8)
    v = attn.value(x).view(2, 10, 4, 8).transpose(1, 2).reshape(8, 10, 8)
    ref, _, _ = FullQKAttention()(qk, v, input_mask=mask.repeat_interleave(4, 0))
    ref = attn.out(ref.view(2, 4, 10, 8).transpose(1, 2).reshape(2, 10, 32))
    torch.testing.assert_close(ours[mask], ref[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [16, 11, 3])  # 11 and 3 are padded to 16 inside the block
def test_lsh_equals_shared_qk_when_every_query_sees_every_key(T):
    # bucket_size 8 and T <= 16 give two buckets: each chunk attends to itself and the
    # one before it (cyclically), i.e. to every key. With more hash rounds the first chunk
    # of a round looks back into the previous round's tokens, so only one round is exact.
    cfg = ModelConfig(**TINY, attention="lsh", lsh_n_hashes=1)
    lsh = LSHSelfAttention(cfg).eval()
    full = SharedQKAttention(cfg.replace(attention="full-shared-qk")).eval()
    full.load_state_dict({k: v for k, v in lsh.state_dict().items()})
    x = torch.randn(3, T, 32)
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[2, T - 2:] = False
    torch.testing.assert_close(lsh(x, mask)[mask], full(x, mask)[mask], atol=1e-5, rtol=1e-4)


def test_lsh_differs_from_full_when_buckets_restrict_attention():
    cfg = ModelConfig(**{**TINY, "lsh_bucket_size": 4}, attention="lsh", lsh_n_hashes=1)
    lsh = LSHSelfAttention(cfg).eval()
    full = SharedQKAttention(cfg.replace(attention="full-shared-qk")).eval()
    full.load_state_dict(lsh.state_dict())
    x = torch.randn(2, 64, 32)
    assert (lsh(x) - full(x)).abs().max() > 1e-3


def test_seeded_hashing_is_reproducible_and_leaves_global_rng_alone():
    model = build_model("bert-lsh", size="tiny", **{k: v for k, v in TINY.items() if k not in ("hidden_size", "num_heads", "num_layers")}).eval()
    batch = make_batch(T=40)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with torch.no_grad(), model.seeded_hashing(7):
        a = model(**batch).loss
        b = model(**batch).loss
    assert torch.equal(torch.get_rng_state(), state)
    assert a == b
    with torch.no_grad():
        c = model(**batch).loss
        d = model(**batch).loss
    assert c != d  # unseeded hashing draws fresh rotations


@pytest.mark.parametrize("sharing,groups,attn_modules,ffn_modules", [
    ("none", 4, 4, 4), ("all", 1, 1, 1), ("all", 2, 2, 2), ("attention", 2, 2, 4), ("ffn", 1, 4, 1),
])
def test_sharing_uses_one_module_object_per_group(sharing, groups, attn_modules, ffn_modules):
    cfg = ModelConfig(**TINY, sharing=sharing, num_groups=groups)
    model = PretrainingModel(cfg)
    layers = model.encoder.layers()
    assert len({id(a) for a, _ in layers}) == attn_modules
    assert len({id(f) for _, f in layers}) == ffn_modules
    # ALBERT's rule: layer i uses group i * G // L
    if sharing == "all":
        assert [model.encoder.attention_index[i] for i in range(4)] == [i * groups // 4 for i in range(4)]
    counts = model.parameter_counts()
    per_layer_attn = sum(p.numel() for p in layers[0][0].parameters())
    per_layer_ffn = sum(p.numel() for p in layers[0][1].parameters())
    assert counts["encoder_unique"] == attn_modules * per_layer_attn + ffn_modules * per_layer_ffn
    assert counts["encoder_total"] == 4 * (per_layer_attn + per_layer_ffn)
    assert counts["total"] - counts["unique"] == counts["encoder_total"] - counts["encoder_unique"]


@pytest.mark.parametrize("variant", list_variants())
@pytest.mark.parametrize("reversible", [False, True])
def test_gradients_reach_every_parameter(variant, reversible):
    overrides = {k: v for k, v in TINY.items() if k not in ("hidden_size", "num_heads", "num_layers")}
    if reversible:
        overrides.update(norm="pre", reversible=True)
    elif build_model(variant, size="tiny", **overrides).cfg.reversible:
        overrides.update(reversible=False)
    model = build_model(variant, size="tiny", **overrides).train()
    batch = make_batch()
    if not model.cfg.sentence_head:
        batch.pop("sentence_labels")
    model(**batch).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the token-type table has 2 rows; both are used by the batch only if types are given
    missing = [n for n in missing if "token_type" not in n]
    assert missing == []


@pytest.mark.parametrize("attention", ["full", "full-shared-qk", "lsh"])
@pytest.mark.parametrize("sharing,groups", [("none", 4), ("all", 2), ("attention", 1)])
def test_reversible_matches_two_stream_loss_and_gradients(attention, sharing, groups):
    # dropout on (hidden, and attention's cheap CPU dropout, inside LSHAttention too): the
    # reversible backward must replay the forward's dropout masks
    cfg = ModelConfig(**{**TINY, "hidden_dropout": 0.1, "attention_dropout": 0.1}, attention=attention, norm="pre",
                      reversible=True, sharing=sharing, num_groups=groups)
    torch.manual_seed(0)
    model = PretrainingModel(cfg).train()
    batch = make_batch(T=24)

    def run(force_irreversible):
        model.zero_grad()
        model.encoder.force_irreversible = force_irreversible
        torch.manual_seed(42)  # same dropout masks and LSH rotations in both runs
        loss = model(**batch).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_rev, grads_rev = run(False)
    loss_irr, grads_irr = run(True)
    torch.testing.assert_close(loss_rev, loss_irr, atol=1e-5, rtol=1e-5)
    for name in grads_irr:
        torch.testing.assert_close(grads_rev[name], grads_irr[name], atol=1e-5, rtol=1e-4, msg=name)


def test_reversible_eval_and_no_grad_use_two_stream_path():
    cfg = ModelConfig(**TINY, norm="pre", reversible=True)
    model = PretrainingModel(cfg).eval()
    batch = make_batch()
    with torch.no_grad():
        a = model(**batch).loss
    model.encoder.force_irreversible = True
    with torch.no_grad():
        b = model(**batch).loss
    assert torch.equal(a, b)
