"""Long inputs (issue 33): BigBird's block-sparse attention, the pure sliding window, and the
length-threshold hybrid, checked against dense SDPA under the same boolean mask and against HF
transformers' BigBirdModel(attention_type="block_sparse") given the same random blocks."""
import pytest
import torch

from core.model import ModelConfig, PretrainingModel
from core.model.blocksparse import (
    bigbird_keys_per_query,
    bigbird_pattern,
    bigbird_random_blocks,
    pattern_attention,
    window_pattern,
)
from core.model.local import dense_window_mask
from variants import get_config

SMALL = dict(hidden_size=64, num_heads=2, num_layers=2, vocab_size=300, max_position_embeddings=4096,
             hidden_dropout=0.0, attention_dropout=0.0)


def padded(T: int, lengths: tuple[int, ...], vocab: int = 300, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (len(lengths), T), generator=g)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return ids, mask


# -- the pattern and its kernels ------------------------------------------------------------------
@pytest.mark.parametrize("T,block,r", [(1000, 64, 3), (640, 32, 2), (517, 16, 0)])
def test_block_sparse_kernels_equal_dense_sdpa_under_the_same_boolean_mask(T, block, r):
    """gather (the CPU's, differentiable) and flex equal SDPA with the pattern's T x T boolean
    mask, padding included, at lengths that are not a multiple of the block; gradients too."""
    torch.manual_seed(0)
    nb = -(-T // block)
    pattern = bigbird_pattern(nb, block, bigbird_random_blocks(nb, r, heads=3, seed=7))
    keys = torch.ones(2, T, dtype=torch.bool)
    keys[1, T - 200:] = False
    q, k, v = (torch.randn(2, 3, T, 16, requires_grad=True) for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=pattern.token_mask(keys, T))
    real = keys[:, None, :, None].expand_as(reference)
    with torch.no_grad():
        flex = pattern_attention(q, k, v, keys, pattern, "flex")
    assert (flex - reference)[real].abs().max() < 1e-5
    gathered = pattern_attention(q, k, v, keys, pattern, "gather")
    assert (gathered - reference)[real].abs().max() < 1e-5 and torch.isfinite(gathered).all()
    grads = []
    for out in (reference, gathered):
        q.grad = k.grad = v.grad = None
        (out * real).square().sum().backward()
        grads.append([t.grad.clone() for t in (q, k, v)])
    for dense, sparse in zip(*grads):
        assert torch.isfinite(sparse).all() and (dense - sparse).abs().max() < 1e-5


def test_the_window_is_a_pattern_too():
    """One description serves both: the sliding window as a BlockPattern gives the window's mask."""
    pattern = window_pattern(100, 7)
    keys = torch.ones(2, 100, dtype=torch.bool)
    keys[1, 60:] = False
    assert torch.equal(pattern.token_mask(keys, 100)[:, 0], dense_window_mask(keys, 100, 7, "cpu")[:, 0])


def test_random_blocks_are_seeded_per_layer_and_head_and_never_global_or_band():
    a, b = bigbird_random_blocks(32, 3, heads=4, seed=1), bigbird_random_blocks(32, 3, heads=4, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, bigbird_random_blocks(32, 3, heads=4, seed=2))
    assert not torch.equal(a[0], a[1])                     # each head its own
    rows = torch.arange(1, 31)[:, None]
    assert ((a > 0) & (a < 31) & ((a - rows[None]).abs() > 1)).all()
    assert (a.sort(-1).values.diff(dim=-1) > 0).all()      # no block twice in a row
    # a model draws the same blocks in training and evaluation, and again when rebuilt
    cfg = ModelConfig(**SMALL, attention="bigbird", block_size=32, num_random_blocks=2)
    first, second = PretrainingModel(cfg), PretrainingModel(cfg)
    ids, mask = padded(1024, (1024, 700))
    first.train()(ids, mask)
    second.eval()(ids, mask)
    assert first.encoder.attention[1].fn.plans.keys() == {(1, 32)}
    assert torch.equal(first.encoder.attention[1].fn.plans[(1, 32)], second.encoder.attention[1].fn.plans[(1, 32)])
    assert not torch.equal(first.encoder.attention[0].fn.plans[(0, 32)], first.encoder.attention[1].fn.plans[(1, 32)])


def test_keys_per_query_of_the_cost_model_match_the_pattern():
    for T in (1024, 2048, 8192, 16384):
        nb = T // 64
        pattern = bigbird_pattern(nb, 64, bigbird_random_blocks(nb, 3, 1, 0))
        assert bigbird_keys_per_query(T, 64, 3) == round(pattern.keys_per_query())
    assert bigbird_keys_per_query(704, 64, 3) == 704          # (5 + 2r) x block: full attention


# -- the model ----------------------------------------------------------------------------------------
def test_a_length_that_is_not_a_multiple_of_the_block_is_padded_and_masked():
    """The real tokens' states depend neither on the kernel nor on what the padding holds."""
    torch.manual_seed(0)
    model = PretrainingModel(ModelConfig(**SMALL, attention="bigbird", block_size=32, num_random_blocks=2)).eval()
    ids, mask = padded(1000, (1000, 813, 400))
    real = mask.bool()
    noisy = torch.where(real, ids, torch.randint(5, 300, ids.shape))
    with torch.no_grad():
        outs = {}
        for kernel in ("dense", "gather", "flex"):
            model.attention_kernel = kernel
            outs[kernel] = model.encode(ids, mask)
        model.attention_kernel = "gather"
        outs["other pads"] = model.encode(noisy, mask)
        model.unpad = True
        outs["unpadded"] = model.encode(ids, mask)
    for name in ("gather", "flex", "other pads", "unpadded"):
        assert (outs[name] - outs["dense"])[real].abs().max() < 1e-5, name
    assert model.kernels_ran()["flex"] == 2 and model.kernels_ran()["dense"] == 2


def test_short_batches_take_full_attention_as_hf_bigbird_does():
    """At most (5 + 2r) x block tokens BigBird is full attention (HF's rule): a BERT with the same weights."""
    torch.manual_seed(0)
    big = PretrainingModel(ModelConfig(**SMALL, attention="bigbird", block_size=32, num_random_blocks=2)).eval()
    full = PretrainingModel(ModelConfig(**SMALL)).eval()
    full.load_state_dict(big.state_dict())
    ids, mask = padded(9 * 32, (288, 150))
    with torch.no_grad():
        assert torch.equal(big.encode(ids, mask), full.encode(ids, mask))
    assert big.kernels_ran() == {"full": 2}


@pytest.mark.parametrize("attention", ["bigbird", "local", "lsh"])
def test_the_hybrid_takes_full_attention_up_to_its_threshold_and_counts_the_paths(attention):
    """reformer-pytorch's full_attn_thres: batches of at most N tokens per sequence take full
    attention (shared-QK full attention for LSH, as reformer-pytorch's FullQKAttention), longer
    ones the sparse kind; the training forwards of each path are counted."""
    torch.manual_seed(0)
    kind = dict(attention=attention, block_size=32, num_random_blocks=1, local_window=32, lsh_bucket_size=32)
    hybrid = PretrainingModel(ModelConfig(**SMALL, **kind, full_attn_threshold=512))
    sparse = PretrainingModel(ModelConfig(**SMALL, **kind))
    full = PretrainingModel(ModelConfig(**SMALL, attention="full-shared-qk" if attention == "lsh" else "full"))
    sparse.load_state_dict(hybrid.state_dict())
    full.load_state_dict(hybrid.state_dict())
    for model in (hybrid, sparse, full):
        model.eval()
    short, short_mask = padded(512, (512, 300))
    long, long_mask = padded(1024, (1024, 900))
    with torch.no_grad(), hybrid.seeded_hashing(3), sparse.seeded_hashing(3):
        assert (hybrid.encode(short, short_mask) - full.encode(short, short_mask)).abs().max() < 1e-6
        assert (hybrid.encode(long, long_mask) - sparse.encode(long, long_mask)).abs().max() < 1e-6
        assert (hybrid.encode(short, short_mask) - sparse.encode(short, short_mask)).abs().max() > 1e-3
    hybrid.train()
    for ids, mask in ((short, short_mask), (long, long_mask), (long, long_mask)):
        hybrid(ids, mask).mlm_logits.sum().backward()
    assert hybrid.attention_paths == {"full": 1, attention: 2}
    assert sparse.attention_paths == {} and full.attention_paths == {}


def test_local_is_the_sliding_window_in_every_layer():
    torch.manual_seed(0)
    cfg = get_config("bert-local", "tiny", vocab_size=300, hidden_dropout=0.0, attention_dropout=0.0)
    assert (cfg.attention, cfg.local_window, cfg.max_position_embeddings) == ("local", 128, 4096)
    model = PretrainingModel(cfg).eval()
    ids, mask = padded(700, (700, 500))
    with torch.no_grad():
        outs = {}
        for kernel in ("dense", "banded", "flex"):
            model.local_kernel = kernel
            outs[kernel] = model.encode(ids, mask)
    for kernel in ("banded", "flex"):
        assert (outs[kernel] - outs["dense"])[mask.bool()].abs().max() < 1e-5
    assert model.kernels_ran() == {"dense": 2, "banded": 2, "flex": 2}


@pytest.mark.parametrize("fields,message", [
    (dict(full_attn_threshold=512), "is full already"),
    (dict(attention="local", global_every=2), "every layer a sliding window"),
    (dict(attention="bigbird", num_random_blocks=-1), "num_random_blocks >= 0"),
])
def test_bad_combinations_are_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **fields})


def test_new_fields_leave_older_configs_as_they_were_written():
    assert not {"block_size", "num_random_blocks", "full_attn_threshold"} & set(get_config("bert").to_dict())
    assert get_config("bert-bigbird").to_dict()["attention"] == "bigbird"


def test_cost_model_counts_bigbirds_keys_and_the_hybrids_full_batches():
    from core.measure.cost import flops_per_token

    full, big = get_config("bert", max_position_embeddings=8192), get_config("bert-bigbird", max_position_embeddings=8192)
    hybrid = big.replace(full_attn_threshold=2048)
    at = lambda cfg, T: flops_per_token(cfg, T)["attention_flops_per_token"]  # noqa: E731
    assert at(big, 8192) < at(full, 8192) / 10 and at(big, 512) == at(full, 512)
    assert at(hybrid, 2048) == at(full, 2048) and at(hybrid, 4096) == at(big, 4096)


# -- HF BigBird -------------------------------------------------------------------------------------------
def hf_bigbird(cls: str = "BigBirdForPreTraining", **over):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BigBirdConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=128, max_position_embeddings=4096, block_size=64,
                                        num_random_blocks=3, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, **over)
    return getattr(transformers, cls)(config)


@pytest.mark.parametrize("T", [1024, 2048])
def test_hidden_states_equal_hf_block_sparse_bigbird_given_its_random_blocks(T):
    """HF draws its blocks in training mode only (numpy seeded by the layer; in evaluation it
    sets them all to block 0): HF runs in training mode with dropout 0, its blocks are read
    in that same forward and handed to ours. At 1,024 tokens HF's plans repeat some band and
    global blocks as random ones; the gather kernel counts them twice, as HF does."""
    from core.interop import from_hf
    from core.interop.hf_bigbird import RecordRandomBlocks, hf_random_blocks

    hf = hf_bigbird()
    ours = from_hf(hf).eval()
    assert ours.cfg.attention == "bigbird" and (ours.cfg.block_size, ours.cfg.num_random_blocks) == (64, 3)
    ids, mask = padded(T, (T, T - 300, T // 2 + 7))
    hf.train()
    with torch.no_grad(), RecordRandomBlocks(hf) as drawn:
        theirs = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    blocks = hf_random_blocks(hf, T)
    assert blocks.keys() == drawn.blocks.keys() == {0, 1}
    assert all(torch.equal(blocks[k], drawn.blocks[k]) for k in blocks)
    ours.set_random_blocks(blocks)
    ours.attention_kernel = "gather"
    with torch.no_grad():
        mine = ours.encode(ids, mask, torch.zeros_like(ids))
    assert (mine - theirs)[mask.bool()].abs().max() < 1e-4


def test_bigbird_converts_both_ways():
    from core.interop import from_hf
    from core.interop.hf_bigbird import bigbird_problems, to_hf_bigbird

    for cls in ("BigBirdForPreTraining", "BigBirdForMaskedLM"):
        hf = hf_bigbird(cls)
        ours = from_hf(hf)
        assert ours.cfg.sentence_head == (cls == "BigBirdForPreTraining") and ours.cfg.activation == "gelu_tanh"
        back = to_hf_bigbird(ours)
        assert type(back).__name__ == cls
        theirs, again = hf.state_dict(), back.state_dict()
        assert all(torch.equal(theirs[k], again[k]) for k in theirs if ours.cfg.sentence_head or "pooler" not in k)
    assert from_hf(hf_bigbird(attention_type="original_full")).cfg.attention == "full"
    assert "attention='full' (needs 'bigbird')" in bigbird_problems(get_config("bert"))
