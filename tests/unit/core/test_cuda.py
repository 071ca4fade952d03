"""The CUDA path: bf16 autocast against fp32, peak memory from the allocator, and
seeded LSH hashing that also fixes the CUDA generator. Skipped without a GPU (nccl DDP on
every visible GPU is in tests/integration/test_distributed.py)."""
import pytest
import torch

from core.device import autocast
from core.measure import measure
from core.model import PretrainingModel
from variants import get_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: no GPU visible (torch.cuda.is_available() is False)")


def fixed_batch(device, vocab=1000, batch=4, length=128):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, ::7] = ids[:, ::7]
    return {k: v.to(device) for k, v in dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                                              token_type_ids=torch.zeros_like(ids), mlm_labels=labels,
                                              sentence_labels=torch.tensor([0, 1, 0, 1])).items()}


@pytest.mark.parametrize("variant", ["bert", "albert-reformer"])
def test_bf16_autocast_loss_is_close_to_fp32(variant):
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = PretrainingModel(get_config(variant, size="mini", vocab_size=1000, hidden_dropout=0.0,
                                        attention_dropout=0.0)).to(device).eval()
    batch = fixed_batch(device)
    with torch.no_grad(), model.seeded_hashing(1):
        fp32 = float(model(**batch).loss)
        with autocast(device):
            bf16 = float(model(**batch).loss)
    assert bf16 == pytest.approx(fp32, rel=2e-2)  # bf16 keeps ~3 significant digits
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_peak_memory_comes_from_the_cuda_allocator():
    row = measure(get_config("bert", size="mini", vocab_size=1000), 8, 128, "cuda", speed=False, memory=True)
    assert row["status"] == "ok" and row["memory_method"] == "cuda.max_memory_allocated"
    assert row["peak_mem_bytes"] > 0 and row["saved_bytes"] > 0


def test_seeded_hashing_fixes_lsh_buckets_on_cuda():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = PretrainingModel(get_config("albert-reformer", size="tiny", vocab_size=1000, hidden_dropout=0.0,
                                        attention_dropout=0.0)).to(device).eval()
    batch = fixed_batch(device)
    with torch.no_grad():
        with model.seeded_hashing(3):
            a = model(**batch).loss
        torch.cuda.manual_seed(12345)  # the caller's CUDA stream differs; buckets must not
        with model.seeded_hashing(3):
            b = model(**batch).loss
    assert float(a) == float(b)
