"""Where a sparse attention starts to pay (issue 33, item 4): crossover lengths from bench rows."""
import pytest

from ablations.analysis.seq_crossover import crossover, crossovers, growth_exponent
from ablations.report.bench import crossover_line, crossover_lines


def row(variant, T, tps=None, peak=None, saved=None, status="ok", tokens_per_batch=16384, device="cpu", size="mini"):
    return {"variant": variant, "seq_len": T, "batch_size": max(1, tokens_per_batch // T), "status": status,
            "tokens_per_s": tps, "peak_mem_bytes": peak, "saved_bytes": saved, "device": device, "size": size}


def sweep():
    """bert: quadratic scores (out of memory at 16K); bigbird: linear, slower at short lengths."""
    rows = []
    for T in (512, 1024, 2048, 4096, 8192):
        rows.append(row("bert", T, tps=4e6 / (1000 + T), peak=1e8 + 4e4 * T, saved=2e4 * 16384 / T * T * (64 + T)))
        rows.append(row("bert-bigbird", T, tps=2e6 / 1000 * (1 if T < 2048 else 1.2), peak=1e8 + 3e7,
                        saved=2e4 * 16384 / T * T * 600))
    rows.append(row("bert", 16384, status="oom"))
    rows.append(row("bert-bigbird", 16384, tps=2400.0, peak=1.3e8, saved=2e4 * 16384 * 600))
    return rows


def test_the_crossover_is_the_first_length_from_which_the_variant_stays_cheaper():
    rows = sweep()
    time = crossover(rows, "bert-bigbird", "bert", "time")
    # bert: 4e6 / (1000 + T) tokens/s, bigbird 2000: slower at 512 (2646), faster from 1024 (1976) on
    assert time.ratios[512] == pytest.approx((4e6 / 1512) / 2000)
    assert time.length == 1024 and time.ratios[16384] == "oom"
    assert 512 < time.interpolated < 1024
    memory = crossover(rows, "bert-bigbird", "bert", "memory")
    assert memory.length == 1024                # 1.3e8 vs 1e8 + 4e4 x 1024 = 1.41e8
    assert "from 1,024 tokens" in crossover_line(memory)


def test_never_and_always_cheaper_are_said_plainly():
    rows = [row("bert", T, tps=1000.0) for T in (512, 1024)] + [row("bert-lsh", T, tps=500.0) for T in (512, 1024)]
    assert crossover(rows, "bert-lsh").length is None
    assert "is not cheaper" in crossover_line(crossover(rows, "bert-lsh"))
    faster = [row("bert", T, tps=1000.0) for T in (512, 1024)] + [row("bert-local", T, tps=2000.0) for T in (512, 1024)]
    assert "at every length measured" in crossover_line(crossover(faster, "bert-local"))


def test_rows_of_another_machine_are_left_out_and_memory_growth_is_fitted():
    rows = sweep() + [row("bert-bigbird", 512, tps=1.0, device="cuda:0")]
    assert all(c.ratios.get(512) != "oom" for c in crossovers(rows))
    assert growth_exponent(rows, "bert-bigbird") == pytest.approx(1.0, abs=0.01)
    assert growth_exponent(rows, "bert") > 1.5
    lines = crossover_lines(rows)
    assert any(line.startswith("bert-bigbird: memory saved for backward per sequence grows as T^1.00") for line in lines)


def test_rows_may_be_objects_with_attributes():
    class Row:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    rows = [Row(**r) for r in sweep()]
    assert crossover(rows, "bert-bigbird", "bert", "time").length == 1024
