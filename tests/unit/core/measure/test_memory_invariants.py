"""Measurement invariants: deterministic saved bytes, and the memory directions the papers claim."""
import pytest
import torch

from core.measure import flops_per_token, make_batch, measure, saved_tensor_bytes
from core.model import PretrainingModel
from variants import get_config

SMALL = dict(vocab_size=500, hidden_dropout=0.0, attention_dropout=0.0)


def saved(cfg, B, T):
    torch.manual_seed(0)
    model = PretrainingModel(cfg)
    return saved_tensor_bytes(model, make_batch(cfg, B, T), torch.device("cpu"))


def test_saved_bytes_are_identical_across_runs():
    cfg = get_config("albert-reformer", size="tiny", **SMALL)
    assert saved(cfg, 2, 256) == saved(cfg, 2, 256) > 0


@pytest.mark.parametrize("variant", ["bert", "albert-reformer"])
def test_a_row_takes_its_saved_bytes_from_the_fresh_memory_process_and_they_are_the_same(variant):
    """On a CPU the memory worker measures the saved bytes (a sweep under --memory-limit
    once ran out of address space in the main process and recorded lengths that fit as
    oom): the figure is the one this process measures."""
    cfg = get_config(variant, size="tiny", **SMALL)
    row = measure(cfg, 2, 128, "cpu", speed=False, memory=True)
    assert row["status"] == "ok" and row["peak_mem_bytes"] > 0
    assert row["saved_bytes"] == saved(cfg, 2, 128) == measure(cfg, 2, 128, "cpu", speed=False, memory=False)["saved_bytes"]


def test_reformer_saves_several_times_less_than_bert_at_2048_tokens():
    bert = saved(get_config("bert", size="mini", max_position_embeddings=2048, **SMALL), 1, 2048)
    reformer = saved(get_config("reformer", size="mini", max_position_embeddings=2048, **SMALL), 1, 2048)
    assert bert > 4 * reformer


@pytest.mark.parametrize("attention", ["full", "lsh"])
def test_reversible_layers_at_least_halve_saved_bytes_at_depth_4(attention):
    cfg = get_config("bert", size="mini", norm="pre", attention=attention, **SMALL)
    assert cfg.num_layers >= 4
    plain = saved(cfg, 2, 256)
    reversible = saved(cfg.replace(reversible=True), 2, 256)
    assert reversible * 2 <= plain


def test_reversible_saving_grows_with_depth():
    ratios = []
    for layers in (2, 4, 8):
        cfg = get_config("bert", size="mini", norm="pre", num_layers=layers, **SMALL)
        ratios.append(saved(cfg, 2, 128) / saved(cfg.replace(reversible=True), 2, 128))
    assert ratios[0] < ratios[1] < ratios[2]


def test_measure_row_has_every_figure():
    cfg = get_config("bert", size="tiny", **SMALL)
    row = measure(cfg, 2, 64, "cpu", warmup=1, steps=2, memory=True)
    assert row["status"] == "ok" and row["device"] == "cpu"
    assert row["step_s_min"] <= row["step_s_median"] <= row["step_s_max"]
    for figure in ("tokens_per_s", "infer_tokens_per_s", "peak_mem_bytes", "saved_bytes"):
        assert row[figure] > 0, figure  # measured, not left empty
    assert row["params_unique"] == row["params_total"]
    assert 0 < row["utilisation"] < 1.5
    assert row["flops_label"] == "exact"


def test_lsh_flops_are_labelled_dense_equivalent():
    cost = flops_per_token(get_config("reformer", size="mini"), 4096)
    assert cost["flops_label"] == "dense-equivalent"
    full = flops_per_token(get_config("bert", size="mini", max_position_embeddings=4096), 4096)
    assert cost["attention_flops_per_token"] < full["attention_flops_per_token"] / 4


def test_out_of_memory_is_a_result_not_a_crash(monkeypatch):
    cfg = get_config("bert", size="mini", **SMALL)
    # CPU: the isolated measurement process gets a 3 GB address-space limit; the step
    # needs about 6 GB of activations
    row = measure(cfg, 64, 512, "cpu", speed=False, memory=True, memory_limit_bytes=3_000_000_000)
    assert row["status"] == "oom" and row["peak_mem_bytes"] is None and row["error"]

    # in process: an allocator failure anywhere in the step becomes a status
    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(PretrainingModel, "forward", boom)
    row = measure(cfg, 2, 64, "cpu", memory=False)
    assert row["status"] == "oom" and "out of memory" in row["error"]


def test_parse_bytes():
    from core.device import parse_bytes

    assert parse_bytes("16G") == 16 * 2**30 and parse_bytes("512M") == 512 * 2**20 and parse_bytes("1000") == 1000
    for bad in ("lots", "0", "-5G", ""):
        with pytest.raises(ValueError, match=r"is not a size: give bytes or a number with K, M, G or T \(e.g. 16G\)"):
            parse_bytes(bad)
