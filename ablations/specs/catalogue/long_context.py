"""Long inputs (issue 33): which attention gives the best loss for its memory and time on long
documents? Full attention, a sliding window alone and with global layers, BigBird, LSH with 2
and 4 hash rounds and a length-threshold hybrid, each trained at several lengths.

How the ablation is built, and why:

- **One shared start.** The first arm, `start-512`, is full attention trained at 512 tokens
  (the run's `--seq-len`); every other arm is warm-started from it (`train.init_from`) by
  KoBigBird's recipe: every tensor copied, the position table extended to the arm's length
  and left at its random initialisation (`train.init_positions = "random"`; KoBigBird does
  not load BERT's 512 rows: core.interop.warm_start). Every arm thus starts from the same
  pretrained weights, and BigBird's and the window's Q, K, V and O are BERT's.
  `init_from = "RUN_DIR/start-512"` names that arm of this run: the runner resolves
  RUN_DIR to the run directory and trains `start-512` first (ablations.run.weights).
- **Lengths as arms.** An arm pins its length (`data.max_length`, the position table and the
  examples per step, so that every step holds the same number of tokens), so one run
  directory, one report and one Pareto front hold every (kind, length). Arms of one length
  share their data configuration, hence the same held-out examples and masks.
- **Long documents.** `doc-sentences` packing: an example is one document's sentences, up to
  the length, never crossing documents, so that a long context is a real one. Batches are
  padded to their longest example, so their lengths vary: the hybrid's threshold meets
  both sides (it is BigBird above half the arm's length, full attention up to it;
  `attention_paths` counts the training forwards of each).
- **Budgets.** Every arm, the start included, trains the run's budget (tokens at a constant
  number of tokens per step), so `--tokens`, `--flops` and `--budget gpu` change them all alike.
  `long_context` trains at 1,024 and 2,048 tokens; `long_context_gpu` adds 4,096 (meant
  for a GPU: its default budget is its GPU one).
"""
from __future__ import annotations

import math
from typing import Any

from ablations.specs.schema import RUN_DIR_ARM, AblationSpec, Arm, Expectation

START = "start-512"
START_FROM = f"{RUN_DIR_ARM}{START}"
WINDOW = 128
# what every arm trains with: MLM alone on long documents, fresh masks (RoBERTa's objective)
_BASE = {"data.packing": "doc-sentences", "data.sentence_task": "none", "data.masking": "dynamic"}
# held-out curve points of a long arm: few and small, since every example is up to T tokens
# (the final evaluation reads the whole held-out set)
_CURVE = {"train.eval_points": 4, "train.curve_examples": 32}


def _kinds(T: int) -> list[tuple[str, str, dict[str, Any]]]:
    bigbird = {"model.attention": "bigbird", "model.block_size": 64, "model.num_random_blocks": 3}
    return [
        ("full", "full attention (SDPA)", {}),
        ("local", f"a {WINDOW}-token sliding window in every layer (bert-local: the pure-window arm)",
         {"model.attention": "local", "model.local_window": WINDOW}),
        ("local+global", f"a {WINDOW}-token sliding window, full attention in every third layer (ModernBERT)",
         {"model.global_every": 3, "model.local_window": WINDOW}),
        ("bigbird", "BigBird: 64-token blocks, 2 global, a band of 3 and 3 random blocks", bigbird),
        ("lsh-2", "LSH, 2 hash rounds of 64-token buckets", {"model.attention": "lsh", "model.lsh_bucket_size": 64,
                                                          "model.lsh_n_hashes": 2}),
        ("lsh-4", "LSH, 4 hash rounds of 64-token buckets", {"model.attention": "lsh", "model.lsh_bucket_size": 64,
                                                          "model.lsh_n_hashes": 4}),
        ("hybrid", f"BigBird, full attention on batches of at most {T // 2} tokens (reformer-pytorch's "
                   "full_attn_thres)", {**bigbird, "model.full_attn_threshold": T // 2}),
    ]


def _arms(lengths: tuple[int, ...], tokens_per_step: int) -> tuple[Arm, ...]:
    arms = [Arm(START, {}, "the shared start: full attention at 512 tokens, trained from scratch")]
    for T in lengths:
        # the masking budget per sequence follows the length (DataConfig's automatic value, named
        # because it changes with the arm's length)
        pinned = {"data.max_length": T, "data.max_predictions": math.ceil(T * 0.15), "model.max_position_embeddings": T,
                  "train.batch_size": max(1, tokens_per_step // T), "train.init_from": START_FROM,
                  "train.init_positions": "random", **_CURVE}
        for kind, text, overrides in _kinds(T):
            arms.append(Arm(f"{kind}/{T}", {**overrides, **pinned}, f"{text} at {T:,} tokens, from {START}",
                            compare_to=None if kind == "full" else f"full/{T}",
                            component=None if kind == "full" else f"{kind} at {T:,} tokens"))
    return tuple(arms)


def _expectations(long: int, short: int) -> tuple[Expectation, ...]:
    return (
        Expectation("BigBird's MLM loss is close to full attention's at equal tokens", f"bigbird/{long}",
                    "eval_mlm_loss", "similar", versus=f"full/{long}",
                    source="BigBird (Zaheer et al. 2020), App. E.1: MLM bits per character"),
        Expectation("LSH's MLM loss is above full attention's at equal tokens, even with 4 hash rounds",
                    f"lsh-4/{long}", "eval_mlm_loss", "higher", versus=f"full/{long}",
                    source="reformer-pytorch issue #69"),
        Expectation("LSH is slower than full attention below about 2,048 tokens", f"lsh-4/{short}", "tokens_per_s",
                    "lower", versus=f"full/{short}", source="reformer-pytorch issue #43"),
        Expectation("BigBird's memory is linear in length: at equal tokens per step it saves activation memory "
                    "against full attention's quadratic scores", f"bigbird/{long}", "saved_bytes", "lower",
                    versus=f"full/{long}", source="BigBird (Zaheer et al. 2020), section 2"),
        Expectation("the sliding window's memory is linear in length, as BigBird's", f"local/{long}", "saved_bytes",
                    "lower", versus=f"full/{long}", source="Longformer (Beltagy et al. 2020), section 3"),
    )


# the CPU budget: `attention`'s size and vocabulary, 2,048 tokens a step at every length (4 x 512,
# 2 x 1,024, 1 x 2,048)
CPU = {"size": "micro", "vocab_size": 4000, "seq_len": 512, "batch_size": 4, "tokens": 250_000}
GPU = {"size": "mini", "vocab_size": 8000, "seq_len": 512, "batch_size": 32, "tokens": 20_000_000,
       "why": "the papers compare long-input attention after 10^8+ tokens; at 2 x 10^7 per arm a mini model's "
              "differences of a few hundredths of a nat start to exceed the noise"}


def long_context() -> AblationSpec:
    return AblationSpec(
        "long_context", "Long documents: full attention, a sliding window alone and with global layers, BigBird, "
        "LSH (2 and 4 hashes) and a length-threshold hybrid, at 1,024 and 2,048 tokens, each warm-started from one "
        "shared 512-token model (KoBigBird's recipe); long_context_gpu adds 4,096", "roberta",
        _arms((1024, 2048), CPU["batch_size"] * CPU["seq_len"]), base_overrides=_BASE, defaults=CPU,
        gpu_budget={**GPU, "batch_size": 4, "why": GPU["why"] + "; the 4,096-token arms: long_context_gpu"},
        expectations=_expectations(2048, 1024))


def long_context_gpu() -> AblationSpec:
    return AblationSpec(
        "long_context_gpu", "long_context at 1,024, 2,048 and 4,096 tokens (meant for a GPU: its default budget is "
        "its GPU one, 16,384 tokens a step)", "roberta",
        _arms((1024, 2048, 4096), GPU["batch_size"] * GPU["seq_len"]), base_overrides=_BASE,
        defaults={k: v for k, v in GPU.items() if k != "why"}, gpu_budget=GPU, expectations=_expectations(4096, 1024))
