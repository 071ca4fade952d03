"""Data pipeline throughput beside the model's, on Korean Wikipedia when it is there.

    pytest benchmarks/bench_data.py --benchmark-only

The pipeline must never be the bottleneck: examples built per second and batches
collated per second (dynamic masking, the costliest mode) are compared with the training
throughput of `bert` mini at the same batch shape; the ratio is printed.
"""
from pathlib import Path

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.data.dataset import split_documents
from core.data.examples import build_examples
from core.measure import make_batch, measure_speed
from variants import get_config

KOWIKI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kowiki"
B, T = 32, 128


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    corpus = str(KOWIKI) if KOWIKI.is_dir() else None  # fall back to the built-in corpus
    cache = tmp_path_factory.mktemp("cache")
    return build_dataset(DataConfig(max_length=T, masking="dynamic", mask_unit="whole-word"), corpus, cache)


def test_examples_built_per_second(benchmark, data):
    train_docs, _ = split_documents(data.store.n_docs, data.cfg)
    docs = train_docs[:200]

    def build():
        return sum(1 for _ in build_examples(data.store, docs, data.cfg, seed=1))

    n = benchmark.pedantic(build, rounds=3, iterations=1)
    benchmark.extra_info["examples"] = n
    benchmark.extra_info["examples_per_s"] = n / benchmark.stats.stats.median
    print(f"\nexamples built/s: {n / benchmark.stats.stats.median:,.0f} ({data.corpus_name})")


def test_batches_collated_per_second(benchmark, data):
    batches = data.train_batches(B)
    next(batches)
    benchmark(lambda: next(batches))
    tokens_per_s = B * data.stats(sample=500)["mean_length"] / benchmark.stats.stats.median
    cfg = get_config("bert", size="mini", vocab_size=data.cfg.vocab_size)
    torch.manual_seed(0)
    from core.model import PretrainingModel

    model = PretrainingModel(cfg)
    speed = measure_speed(model, make_batch(cfg, B, T), torch.device("cpu"), warmup=1, steps=3)
    ratio = tokens_per_s / speed["tokens_per_s"]
    benchmark.extra_info.update(pipeline_tokens_per_s=tokens_per_s, model_tokens_per_s=speed["tokens_per_s"],
                                ratio=ratio)
    print(f"\npipeline {tokens_per_s:,.0f} tok/s (dynamic whole-word masking) vs bert-mini training "
          f"{speed['tokens_per_s']:,.0f} tok/s: {ratio:.0f}x")
