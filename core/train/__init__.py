"""Training: `TrainConfig`, the `Trainer`, checkpoints and held-out evaluation.

- `config`: `TrainConfig` (optimizer, schedule, budget, bookkeeping), validated.
- `trainer`: the loop; the schedule follows the fraction of the budget used.
- `budget`: the budget fields, the one order they are read in, the fraction used.
- `checkpoint`: atomic writes, safe reads, exact resume, and whether a checkpoint may be
  continued (`resume_decision`: resumed, extended, branched or restarted, and why).
- `evaluation`: `evaluate`, held-out scores with fixed masks and a fixed LSH hashing seed.
- `progress_bar`: the rich bar shown while training.
- `distributed`: torchrun's process group (nccl on CUDA, gloo on CPU), the rank's device,
  gradient averaging by all-reduce; the Trainer uses it when WORLD_SIZE > 1.
"""

from core.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "core.train.budget": ["BUDGET_FIELDS", "Budget", "fraction_under", "reached"],
    "core.train.checkpoint": ["CHECKPOINT", "CheckpointError", "finished_training", "load_checkpoint"],
    "core.train.config": ["DEFAULT_HASH_SEED", "TrainConfig"],
    "core.train.distributed": ["World", "average_gradients", "broadcast_object", "init_from_env", "teardown", "wrap_ddp"],
    "core.train.evaluation": ["evaluate"],  # not "evaluate.py": a submodule would shadow the function
    "core.train.trainer": ["Progress", "Trainer", "TrainResult"],
})
