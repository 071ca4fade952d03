"""One full training step (forward, backward, AdamW) of our models beside reference
implementations, timed in the same run so that the ratios are meaningful.

    pytest benchmarks/bench_train_step.py --benchmark-only --benchmark-group-by=group
    pytest benchmarks/bench_train_step.py --benchmark-only -k ratio -s   # interleaved ratios
    PYTHONPATH=. python benchmarks/bench_train_step.py [--rounds 9] [--threads 1] [--compile] [--size small]
    PYTHONPATH=. python benchmarks/bench_train_step.py --corpus ../shared/data/kowiki --no-reformer  # + unpadding
    PYTHONPATH=. python benchmarks/bench_train_step.py --device cuda --bf16 --size base --batch 32 --seq 512 \
        --vocab 30522 --no-reformer --json out.json     # on a GPU (benchmarks/gpu_check.sh runs this)

The `ratio` tests (and the script) alternate both sides in one process, A B A B ..., and
report the median, min and max of the per-round ratio: the figures of
docs/findings/2026-11-23-cpu-training-step.md.

- `bert` mini (vocab 8000), batch 32 x 128, vs HF `BertForPreTraining` of the same shape.
  Ours predicts only the masked 15% (sparse MLM); HF decodes every position.
- `reformer` mini at 4096 tokens vs reformer-pytorch's own `ReformerLM` of the same shape.
- with `--corpus`: real segment-pair batches (where padding is real), unpadding on/off and
  HF, a different batch every round; prints the batches' padding fraction.
- with `--device cuda --bf16`: both sides under bf16 autocast (SDPA on both), every step
  synchronised; utilisation against the chip's bf16 dense peak (its datasheet figure,
  `CHIP_BF16_DENSE_TFLOPS`) and against a bf16 matmul timed in the same rounds.
"""
import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from interleave import fmt, interleave, ratio  # noqa: E402

from core.device import autocast, device_name, synchronize  # noqa: E402
from core.measure import flops_per_token, matmul_peak_flops  # noqa: E402
from core.model import compile_model  # noqa: E402
from core.model.dropout import Dropout  # noqa: E402
from core.optim import adamw  # noqa: E402
from variants import build_model, get_config  # noqa: E402

B, T, V = 32, 128, 8000
# where and in what precision every side runs: set by --device and --bf16 (the main block)
DEVICE, PRECISION = torch.device("cpu"), "auto"

# the datasheet's dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by the first name
# that torch.cuda.get_device_name contains (NVL and PCIe parts before the SXM ones)
CHIP_BF16_DENSE_TFLOPS = (("H200 NVL", 835.0), ("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
                          ("H100", 989.4), ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0),
                          ("A10", 125.0))


def chip_peak_flops() -> float | None:
    if DEVICE.type != "cuda":
        return None
    name = torch.cuda.get_device_name(DEVICE)
    return next((tf * 1e12 for key, tf in CHIP_BF16_DENSE_TFLOPS if key in name), None)


def mlm_batch(B, T, V, sentence=True):
    ids = torch.randint(5, V, (B, T))
    labels = torch.full_like(ids, -100)
    picked = torch.rand(B, T) < 0.15
    labels[picked] = ids[picked]
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                 token_type_ids=torch.zeros_like(ids), mlm_labels=labels)
    if sentence:
        batch["sentence_labels"] = torch.randint(0, 2, (B,))
    return {k: v.to(DEVICE) for k, v in batch.items()}


def make_step(model, loss_fn):
    opt = adamw(model.parameters(), lr=1e-4)  # the Trainer's optimizer, for every model alike
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(DEVICE, PRECISION):
            loss = loss_fn()
        loss.backward()
        opt.step()
        synchronize(DEVICE)  # the timer must see the step's kernels finish
        return loss

    step()  # warm-up: allocator, AdamW state
    return step


@pytest.mark.benchmark(group="bert-mini-32x128")
def test_ours_bert_mini(benchmark):
    model = build_model("bert", size="mini", vocab_size=V)
    batch = mlm_batch(B, T, V)
    benchmark.extra_info["tokens"] = B * T
    benchmark.pedantic(make_step(model, lambda: model(**batch).loss), rounds=9, iterations=1)


@pytest.mark.benchmark(group="bert-mini-32x128")
def test_hf_bert_mini(benchmark):
    pytest.importorskip("transformers")
    model = hf_bert()
    b = mlm_batch(B, T, V)
    benchmark.extra_info["tokens"] = B * T
    benchmark.pedantic(make_step(model, lambda: model(
        input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
        labels=b["mlm_labels"], next_sentence_label=b["sentence_labels"]).loss), rounds=9, iterations=1)


LONG = 4096


@pytest.mark.benchmark(group="reformer-mini-4096")
def test_ours_reformer_mini_4096(benchmark):
    model = build_model("reformer", size="mini", vocab_size=V, max_position_embeddings=LONG)
    batch = mlm_batch(1, LONG, V)
    benchmark.extra_info["tokens"] = LONG
    benchmark.pedantic(make_step(model, lambda: model(**batch).loss), rounds=5, iterations=1)


@pytest.mark.benchmark(group="reformer-mini-4096")
def test_reformer_pytorch_reformerlm_4096(benchmark):
    from reformer_pytorch import ReformerLM

    # the same shape and the same dropout as our `reformer` (ReformerLM defaults to none)
    model = ReformerLM(num_tokens=V, dim=256, depth=4, heads=4, dim_head=64, max_seq_len=LONG,
                       bucket_size=64, n_hashes=4, ff_chunks=4, absolute_position_emb=True,
                       lsh_dropout=0.1, ff_dropout=0.1, post_attn_dropout=0.1)
    b = mlm_batch(1, LONG, V)
    labels = b["mlm_labels"]
    loss_fn = lambda: torch.nn.functional.cross_entropy(  # noqa: E731
        model(b["input_ids"]).transpose(1, 2), labels, ignore_index=-100)
    benchmark.extra_info["tokens"] = LONG
    benchmark.pedantic(make_step(model, loss_fn), rounds=5, iterations=1)


# -- interleaved ratios -------------------------------------------------------------------

def hf_bert(size: str = "mini"):
    """HF `BertForPreTraining` of the shape of our `bert` at `size` (sdpa attention)."""
    import transformers

    ours = get_config("bert", size=size, vocab_size=V)
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=ours.hidden_size, num_hidden_layers=ours.num_layers,
                                  num_attention_heads=ours.num_heads, intermediate_size=ours.intermediate_size,
                                  max_position_embeddings=max(512, T), attn_implementation="sdpa")
    model = transformers.BertForPreTraining(cfg).to(DEVICE)
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def hf_loss(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                 labels=b["mlm_labels"], next_sentence_label=b["sentence_labels"]).loss


def ours_bert(fast_dropout=True, compiled=False, size="mini"):
    torch.manual_seed(0)
    model = build_model("bert", size=size, vocab_size=V, max_position_embeddings=max(512, T)).to(DEVICE)
    for m in model.modules():
        if isinstance(m, Dropout):
            m.fast = fast_dropout
    return compile_model(model) if compiled else model


def inference(model, call):
    model.eval()

    def run():
        with torch.inference_mode(), autocast(DEVICE, PRECISION):
            call()
        synchronize(DEVICE)
    run()  # warm-up
    return run


def peak_shape() -> tuple[int, int, torch.dtype]:
    """core.measure.cost's peak workload: fp32 1024^3 on a CPU; on CUDA 8192^3 in the
    precision the steps run in (bf16 under --bf16), large enough to fill the chip."""
    if DEVICE.type == "cuda":
        return 8192, 8, torch.bfloat16 if PRECISION in ("auto", "bf16") else torch.float32
    return 1024, 4, torch.float32


def matmul_burst():
    """The peak workload, timed as one more side of the interleaving so that the peak is
    measured under the same load as the steps."""
    n, reps, dtype = peak_shape()
    a, b = torch.randn(n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)

    def run():
        for _ in range(reps):
            a @ b
        synchronize(DEVICE)
    return run


def utilisation_figures(times: dict[str, list[float]], name: str, flops_per_step: float) -> dict[str, float | None]:
    """Achieved FLOP/s of a step; over the matmul peak of the same round (median, min, max)
    and over the chip's datasheet bf16 dense peak (CUDA: the MFU usually quoted)."""
    import statistics

    n, reps, _ = peak_shape()
    peak = [2 * n**3 * reps / t for t in times["matmul_peak"]]
    per_round = [flops_per_step / t / p for t, p in zip(times[name], peak)]
    achieved = flops_per_step / statistics.median(times[name])
    chip = chip_peak_flops()
    return {"step_s": statistics.median(times[name]), "flops_per_step": flops_per_step, "achieved_flops": achieved,
            "of_matmul_peak": statistics.median(per_round), "of_matmul_peak_min": min(per_round),
            "of_matmul_peak_max": max(per_round), "matmul_peak_flops": statistics.median(peak),
            "chip_peak_flops": chip, "mfu": achieved / chip if chip else None}


def utilisation(times: dict[str, list[float]], name: str, flops_per_step: float) -> str:
    u = utilisation_figures(times, name, flops_per_step)
    chip = f", MFU {u['mfu']:.1%} of the chip's {u['chip_peak_flops'] / 1e12:.0f} TFLOP/s bf16" if u["mfu"] else ""
    return (f"{u['achieved_flops'] / 1e9:.1f} GFLOP/s, {u['of_matmul_peak']:.0%} of the round's matmul peak "
            f"(min {u['of_matmul_peak_min']:.0%}, max {u['of_matmul_peak_max']:.0%}; peak "
            f"{u['matmul_peak_flops'] / 1e9:.0f} GFLOP/s; cost model peak {matmul_peak_flops(str(DEVICE)) / 1e9:.0f})"
            f"{chip}")


def bert_ratios(rounds: int = 7, compiled: bool = False, size: str = "mini") -> dict[str, dict[str, float]]:
    """Every bert figure of docs/findings/2026-11-23-cpu-training-step.md, interleaved: training
    ours vs HF, the dropout lever on/off, inference ours vs HF; prints utilisation against the matmul peak."""
    import statistics

    b = mlm_batch(B, T, V)
    ours, off, hf = ours_bert(size=size), ours_bert(fast_dropout=False, size=size), hf_bert(size)
    steps = {"ours": make_step(ours, lambda: ours(**b).loss), "ours_native_dropout": make_step(off, lambda: off(**b).loss),
             "hf": make_step(hf, lambda: hf_loss(hf, b)), "matmul_peak": matmul_burst()}
    if compiled:  # compile time falls in make_step's warm-up, outside the timed rounds
        comp = ours_bert(compiled=True, size=size)
        steps["ours_compiled"] = make_step(comp, lambda: comp(**b).loss)
    t = interleave(steps, rounds)
    ti = interleave({"ours": inference(ours, lambda: ours(**b)), "hf": inference(hf, lambda: hf_loss(hf, b))}, rounds)
    out = {"train hf/ours": ratio(t, "hf", "ours"), "fast dropout off/on": ratio(t, "ours_native_dropout", "ours"),
           "inference hf/ours": ratio(ti, "hf", "ours")}
    if compiled:
        out["compile off/on"] = ratio(t, "ours", "ours_compiled")
    print(f"bert {size}, {B}x{T}, V={V}, {device_name(DEVICE)}, precision {PRECISION}")
    for name, r in out.items():
        print(f"{name:>22}: {fmt(r)}")
    fpt = flops_per_token(ours.cfg, T)["flops_per_token"]
    H = ours.cfg.hidden_size
    hf_fpt = fpt + 3 * 0.85 * (2 * H * H + 2 * H * V)  # HF also transforms and decodes the unmasked 85%
    for name, f in (("ours", fpt), ("hf", hf_fpt)):
        print(f"{name:>22}: step {statistics.median(t[name]) * 1e3:.0f} ms, {utilisation(t, name, f * B * T)}")
    LAST["utilisation"] = {name: utilisation_figures(t, name, f * B * T) for name, f in (("ours", fpt), ("hf", hf_fpt))}
    return out


LAST: dict = {}  # the last bert_ratios' utilisation figures, for --json


@pytest.mark.benchmark(group="ratio")
def test_ratio_bert_mini_vs_hf(benchmark):
    pytest.importorskip("transformers")
    result = benchmark.pedantic(bert_ratios, kwargs={"rounds": 7}, rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in result.items()})


def real_batches(corpus: str, n: int) -> tuple[list[dict], float]:
    """The first n training batches (32 x up to 128) of `bert`'s data pipeline on `corpus`,
    and their padding fraction (pad positions over all positions)."""
    from core.data.config import DataConfig
    from core.data.dataset import build_dataset

    data = build_dataset(DataConfig(vocab_size=V, max_length=T, dupe_factor=1), corpus)
    batches = [b for _, (_, _, b) in zip(range(n), data.train_batches(B, 0))]
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return batches, 1 - real / sum(b["attention_mask"].numel() for b in batches)


def unpad_ratios(corpus: str, rounds: int = 8) -> dict[str, dict[str, float]]:
    """Unpadding on/off and HF on real batches, interleaved; every round takes the next batch,
    the same one for every side."""
    batches, pad_fraction = real_batches(corpus, rounds + 1)  # round 0 warms up
    current = {"batch": batches[0]}  # make_step warms up on it
    ours, padded, hf = ours_bert(), ours_bert(), hf_bert()
    ours.unpad = True
    steps = {"ours": make_step(ours, lambda: ours(**current["batch"]).loss),
             "ours_padded": make_step(padded, lambda: padded(**current["batch"]).loss),
             "hf": make_step(hf, lambda: hf_loss(hf, current["batch"]))}
    times = interleave(steps, rounds, before_round=lambda r: current.update(batch=batches[r]))
    out = {"unpad off/on": ratio(times, "ours_padded", "ours"), "real batches hf/ours": ratio(times, "hf", "ours"),
           "real batches hf/padded": ratio(times, "hf", "ours_padded")}
    print(f"real batches from {corpus}: padding fraction {pad_fraction:.1%}")
    for name, r in out.items():
        print(f"{name:>22}: {fmt(r)}")
    return out


KOWIKI = Path(__file__).parent.parent.parent / "shared" / "data" / "kowiki"


@pytest.mark.benchmark(group="ratio")
@pytest.mark.skipif(not KOWIKI.is_dir(), reason="needs ../shared/data/kowiki (real batches, real padding)")
def test_ratio_unpadding_on_kowiki(benchmark):
    pytest.importorskip("transformers")
    benchmark.extra_info.update(benchmark.pedantic(unpad_ratios, args=(str(KOWIKI),), rounds=1, iterations=1))


def reformer_side(name: str):
    """(model, loss function) of one side of the reformer comparison: "ours" or "reformer_pytorch"."""
    b = mlm_batch(1, LONG, V)
    if name == "ours":
        ours = build_model("reformer", size="mini", vocab_size=V, max_position_embeddings=LONG).to(DEVICE)
        return ours, lambda: ours(**b).loss
    from reformer_pytorch import ReformerLM

    # the same shape and the same dropout as our `reformer` (ReformerLM defaults to none)
    theirs = ReformerLM(num_tokens=V, dim=256, depth=4, heads=4, dim_head=64, max_seq_len=LONG, bucket_size=64,
                        n_hashes=4, ff_chunks=4, absolute_position_emb=True, lsh_dropout=0.1, ff_dropout=0.1,
                        post_attn_dropout=0.1).to(DEVICE)
    ce = torch.nn.functional.cross_entropy
    return theirs, lambda: ce(theirs(b["input_ids"]).transpose(1, 2), b["mlm_labels"], ignore_index=-100)


def _peak_rss_bytes() -> int:
    # VmHWM, not ru_maxrss: a spawned child inherits its parent's ru_maxrss across exec
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory needs Linux)")


def _step_peak_rss(name: str, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    model, loss_fn = reformer_side(name)
    before = _peak_rss_bytes()
    make_step(model, loss_fn)()  # two steps: activations, gradients and AdamW state
    queue.put(_peak_rss_bytes() - before)


def reformer_peak_memory() -> dict[str, float]:
    """Peak resident-memory growth over two training steps from a built model (activations,
    gradients, AdamW state), each side alone in a fresh process, at torch's thread count."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {}
    for name in ("ours", "reformer_pytorch"):
        q = ctx.Queue()
        proc = ctx.Process(target=_step_peak_rss, args=(name, torch.get_num_threads(), q))
        proc.start()
        out[name] = q.get() / 2**20
        proc.join()
    print(f"{'reformer 4096 step peak':>22}: ours +{out['ours']:.0f} MiB, reformer-pytorch +{out['reformer_pytorch']:.0f} MiB")
    return out


def reformer_ratio(rounds: int = 3) -> dict[str, dict[str, float]]:
    """`reformer` mini vs ReformerLM at 4096 tokens, and our dropout lever, interleaved."""
    torch.manual_seed(0)
    steps = {}
    for name in ("ours", "ours_native_dropout", "reformer_pytorch"):
        model, loss_fn = reformer_side("reformer_pytorch" if name == "reformer_pytorch" else "ours")
        for m in model.modules():
            if isinstance(m, Dropout):
                m.fast = name == "ours"
        steps[name] = make_step(model, loss_fn)
    t = interleave(steps, rounds)
    out = {"reformer 4096 rp/ours": ratio(t, "reformer_pytorch", "ours"),
           "reformer dropout off/on": ratio(t, "ours_native_dropout", "ours")}
    for name, r in out.items():
        print(f"{name:>22}: {fmt(r)}")
    return out


@pytest.mark.benchmark(group="ratio")
def test_ratio_reformer_mini_4096(benchmark):
    benchmark.extra_info.update(benchmark.pedantic(reformer_ratio, kwargs={"rounds": 3}, rounds=1, iterations=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="interleaved ratios: ours vs HF and vs reformer-pytorch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time our model torch.compile'd (compile off/on)")
    parser.add_argument("--no-reformer", action="store_true")
    parser.add_argument("--size", default="mini", help="bert size for the ours-vs-HF figures (mini, small, ...)")
    parser.add_argument("--corpus",
                        help="also time unpadding on this corpus's real batches (e.g. ../shared/data/kowiki)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides (the default on CUDA)")
    parser.add_argument("--batch", type=int, default=B, help="examples per step")
    parser.add_argument("--seq", type=int, default=T, help="tokens per example")
    parser.add_argument("--vocab", type=int, default=V)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    from core.device import pick_device

    DEVICE = pick_device(args.device)
    PRECISION = "bf16" if args.bf16 else ("auto" if DEVICE.type == "cuda" else "fp32")
    B, T, V = args.batch, args.seq, args.vocab
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    figures = {"device": device_name(DEVICE), "torch": torch.__version__, "precision": PRECISION, "size": args.size,
               "batch": B, "seq": T, "vocab": V, "rounds": args.rounds, "bert": bert_ratios(args.rounds, args.compile,
                                                                                           args.size), **LAST}
    if args.corpus:
        figures["unpad"] = unpad_ratios(args.corpus, args.rounds + 1)
    if not args.no_reformer:
        figures["reformer"] = reformer_ratio(max(3, args.rounds // 2))
        if DEVICE.type == "cpu":  # resident memory; on CUDA `python -m ablations bench` measures the allocator's
            figures["reformer_peak_rss_mib"] = reformer_peak_memory()
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(figures, indent=1))
