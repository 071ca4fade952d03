"""What the catalogue's ablations share: the CPU budgets every training ablation runs at by
default, and the components several of them add (each a dict of dotted overrides).

Every training ablation shares one CPU budget (`CPU_BUDGET`): the size, vocabulary and
token budget at which a model leaves the unigram stage in a few minutes on 2 cores (the
rate follows each arm's width, `core.optim.lr_for_width`)
(docs/findings/2026-11-23-learning-budget.md gives the measurements). `gpu_budget` is where
each paper's loss effect is expected to show.
"""
from __future__ import annotations

# E=64 stays below H at every size the budgets use (micro's H=128 included); ALBERT Table 3
# measured E from 64 to 768 (E=128 is its default at H=768)
FACTORIZED = {"model.embedding_size": 64}
SHARED = {"model.sharing": "all", "model.num_groups": 1}
SOP = {"data.sentence_task": "sop"}
# buckets of 32: the CPU budget's 128-token sequences hold 4 buckets (LSH with only two
# buckets would be full attention in disguise); two hash rounds, the Reformer paper's LSH-2,
# since this component is in 5 of albert_reformer's 11 arms (`attention` sweeps 1 to 8)
LSH = {"model.attention": "lsh", "model.lsh_bucket_size": 32, "model.lsh_n_hashes": 2}
# (docs/findings/2026-11-23-learning-budget.md); every training ablation's default
CPU_BUDGET = {"size": "micro", "vocab_size": 4000, "seq_len": 128, "batch_size": 16, "tokens": 550_000}
# `attention`: the CPU budget's size, vocabulary and tokens per step, at 4x the length so
# that LSH's 64-token buckets number 8 (the Reformer's own setting is 64-token buckets, 8+
# of them); 40,000 tokens at mini and 1024 (the earlier budget) left every arm at the unigram
# stage
ATTENTION_BUDGET = {**CPU_BUDGET, "seq_len": 512, "batch_size": 4}
REVERSIBLE = {"model.norm": "pre", "model.reversible": True}
COMPONENTS = [("factorized", "factorized embeddings E=64", FACTORIZED), ("shared", "all layers share one group", SHARED),
               ("sop", "sentence-order prediction instead of NSP", SOP), ("lsh", "LSH attention", LSH),
               ("reversible", "reversible residual layers (pre-LN)", REVERSIBLE)]


# The main job's budget: the ladder's six arms at CPU_BUDGET took 625 s on a fresh 2-core
# machine (2026-12-01, 0.21 s per dense step); at 400,000 tokens about 490 s, and its
# slowest learner (+shared) was 0.10 nats below the training unigram there
# (docs/findings/2026-12-01-main-job-time.md)
MAIN_JOB_BUDGET = {**CPU_BUDGET, "tokens": 400_000}
AR_GPU_BUDGET = {"size": "small", "seq_len": 512, "batch_size": 128, "tokens": 200_000_000,
                  "why": "loss gaps between the rungs appear after about 10^8 tokens (ALBERT Fig. 2 scale); "
                         "parameters, memory and speed show at any budget"}


