"""Training: `TrainConfig`, the `Trainer`, checkpoints and held-out evaluation.

- `config`: `TrainConfig` (optimizer, schedule, budget, bookkeeping), validated.
- `trainer`: the loop; the schedule follows the fraction of the budget used.
- `checkpoint`: atomic writes, safe reads, exact resume.
- `evaluate`: held-out scores with fixed masks and a fixed LSH hashing seed.
- `progress_bar`: the rich bar shown while training.
- `distributed`: torchrun's process group (nccl on CUDA, gloo on CPU), the rank's device,
  gradient averaging by all-reduce; the Trainer uses it when WORLD_SIZE > 1.
"""
from core.train.checkpoint import CHECKPOINT, CheckpointError, load_checkpoint
from core.train.config import TrainConfig
from core.train.distributed import World, average_gradients, broadcast_object, init_from_env, teardown, wrap_ddp
from core.train.evaluate import DEFAULT_HASH_SEED, evaluate
from core.train.trainer import Progress, Trainer, TrainResult

__all__ = ["CHECKPOINT", "DEFAULT_HASH_SEED", "CheckpointError", "Progress", "TrainConfig", "TrainResult",
           "Trainer", "World", "average_gradients", "broadcast_object", "evaluate", "init_from_env", "load_checkpoint",
           "teardown", "wrap_ddp"]
