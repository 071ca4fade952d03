"""Speed levers stay numerically equivalent: cheap CPU dropout, the spelled-out attention it
needs, the opt-in compiled model (with its eager fallback) and unpadding."""
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

import core.model.compiled as compiled
from core.model import ModelConfig, PretrainingModel, compile_model
from core.model.attention import attend
from core.model.dropout import Dropout, dropout, keep_mask
from core.model.unpad import Packing


def test_keep_mask_rate_and_exact_scale():
    torch.manual_seed(0)
    keep, scale = keep_mask(torch.Size([1000, 1000]), 0.1, torch.device("cpu"))
    kept = 1 - 6554 / 65536  # p rounded to 1/65536
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert abs(keep.float().mean().item() - kept) < 2e-3  # 1e6 draws: 4 standard errors
    assert scale == pytest.approx(1 / kept, rel=1e-12)  # E[dropout(x)] = x exactly


def test_fast_dropout_forward_backward_use_one_mask():
    torch.manual_seed(0)
    x = torch.randn(64, 128, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    y.backward(torch.ones_like(y))
    kept = y != 0
    scale = 65536 / (65536 - 16384)
    torch.testing.assert_close(y[kept], x[kept] * scale)
    torch.testing.assert_close(x.grad, kept.float() * scale)  # gradient flows exactly where kept
    assert dropout(x, 0.25, training=False) is x


def test_same_seed_same_mask_for_reversible_recomputation():
    torch.manual_seed(3)
    a = dropout(torch.ones(4096), 0.1, True)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(torch.ones(4096), 0.1, True))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_spelled_out_attention_equals_sdpa(mask_kind):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    mask = {"none": None, "bool": torch.rand(2, 1, 1, 16) > 0.3,
            "float": torch.randn(2, 1, 16, 16)}[mask_kind]
    if mask_kind == "bool":
        mask[..., 0] = True
    drop = Dropout(1e-9).train()  # takes the spelled-out path; rounds to dropping nothing
    torch.testing.assert_close(attend(q, k, v, mask, drop), F.scaled_dot_product_attention(q, k, v, mask))


def _tiny(layers: int = 2) -> ModelConfig:
    return ModelConfig(vocab_size=120, hidden_size=32, num_layers=layers, num_heads=2, max_position_embeddings=32,
                       hidden_dropout=0.0, attention_dropout=0.0)


def _batch(cfg: ModelConfig) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, cfg.vocab_size, (3, 16), generator=g)
    labels = torch.where(torch.rand(3, 16, generator=g) < 0.3, ids, -100)
    labels[:, 1] = ids[:, 1]
    mask = torch.ones_like(ids)
    mask[0, 12:] = 0
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), mlm_labels=labels,
                sentence_labels=torch.tensor([0, 1, 1]))


def _loss_and_grads(model: PretrainingModel, batch: dict):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None,
                    reason="torch.compile's inductor needs a C++ compiler (g++ or clang++) on CPU")
def test_compiled_model_matches_eager():
    torch.manual_seed(0)
    cfg = _tiny(layers=1)  # every part compiled once: keeps this test's compile time down
    eager = PretrainingModel(cfg)
    comp = PretrainingModel(cfg)
    comp.load_state_dict(eager.state_dict())
    compile_model(comp)
    assert list(comp.state_dict()) == list(eager.state_dict())  # checkpoints and interop unchanged
    batch = _batch(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would make this test vacuous
        loss_c, grads_c = _loss_and_grads(comp, batch)
    loss_e, grads_e = _loss_and_grads(eager, batch)
    torch.testing.assert_close(loss_c, loss_e, atol=1e-5, rtol=1e-5)
    assert grads_c.keys() == grads_e.keys()
    for name in grads_e:
        torch.testing.assert_close(grads_c[name], grads_e[name], atol=1e-5, rtol=1e-4, msg=name)


def test_compile_failure_falls_back_with_one_warning(monkeypatch):
    def broken_compile(fn):
        def fail(*a, **k):
            raise RuntimeError("InductorError: no C++ compiler found\nlong traceback")
        return fail

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    torch.manual_seed(0)
    cfg = _tiny()
    eager, comp = PretrainingModel(cfg), PretrainingModel(cfg)
    comp.load_state_dict(eager.state_dict())
    compile_model(comp)
    batch = _batch(cfg)
    with pytest.warns(RuntimeWarning, match="torch.compile failed for Embeddings .InductorError: no C.. compiler"):
        loss_c, grads_c = _loss_and_grads(comp, batch)
    loss_e, grads_e = _loss_and_grads(eager, batch)
    assert torch.equal(loss_c, loss_e)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # fell back once, silent afterwards
        comp(**batch)


def test_genuine_errors_are_not_swallowed_by_the_fallback():
    cfg = _tiny()
    model = compile_model(PretrainingModel(cfg))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        model(input_ids=torch.zeros(1, 64, dtype=torch.long))


# -- unpadding --------------------------------------------------------------------------------

def _ragged_batch(cfg: ModelConfig) -> dict:
    batch = _batch(cfg)
    for row, length in enumerate((16, 5, 11)):  # one full row, two padded ones
        batch["attention_mask"][row] = torch.arange(16) < length
    batch["mlm_labels"][batch["attention_mask"] == 0] = -100
    return batch


def test_packing_round_trip_keeps_real_tokens_and_zeros_pads():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    x = torch.arange(12.0).view(2, 3, 2)
    packing = Packing.from_mask(mask)
    packed = packing.unpad(x)
    assert packed.shape == (1, 3, 2) and packing.tokens == 3
    torch.testing.assert_close(packed[0], x[mask])
    torch.testing.assert_close(packing.pad(packed), x * mask[..., None])


UNPAD_LAYOUTS = {
    "bert": {},
    "albert": dict(sharing="all", embedding_size=16, activation="gelu_tanh"),
    "shared-qk": dict(attention="full-shared-qk"),
    "reversible": dict(norm="pre", reversible=True),
}


@pytest.mark.parametrize("layout", list(UNPAD_LAYOUTS))
def test_unpadded_encoder_equals_padded(layout):
    """Same loss, same gradients, same real-token hidden states: unpadding changes which
    positions are computed, never what a real token's output is."""
    torch.manual_seed(0)
    cfg = _tiny().replace(**UNPAD_LAYOUTS[layout])
    model = PretrainingModel(cfg)
    batch = _ragged_batch(cfg)
    loss_p, grads_p = _loss_and_grads(model, batch)
    model.unpad = True
    loss_u, grads_u = _loss_and_grads(model, batch)
    torch.testing.assert_close(loss_u, loss_p, atol=1e-6, rtol=1e-6)
    assert grads_u.keys() == grads_p.keys()
    for name in grads_p:
        torch.testing.assert_close(grads_u[name], grads_p[name], atol=1e-6, rtol=1e-5, msg=name)
    model.eval()
    real = batch["attention_mask"].bool()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    h_unpadded = model.encode(**inputs)
    model.unpad = False
    h_padded = model.encode(**inputs)
    torch.testing.assert_close(h_unpadded[real], h_padded[real], atol=1e-6, rtol=1e-5)
    assert not h_unpadded[~real].any()  # pad positions: zeros, not stale values


def test_lsh_models_run_padded_whatever_unpad_says():
    """LSH buckets hold pad keys too, so the real tokens' outputs depend on the pad
    positions: an LSH model must not take the packed path."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=120, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=32,
                      attention="lsh", lsh_bucket_size=4, lsh_n_hashes=2, norm="pre", reversible=True)
    model = PretrainingModel(cfg).eval()
    inputs = {k: v for k, v in _ragged_batch(cfg).items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with model.seeded_hashing(7):
        padded = model.encode(**inputs)
        model.unpad = True
        assert torch.equal(model.encode(**inputs), padded)
