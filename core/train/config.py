"""TrainConfig: optimizer, schedule, budget and bookkeeping of one training run."""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.config_base import StrictConfig, check_choice
from core.optim import MUON_ADJUST_LR, check_optimizer, check_schedule
from core.train.budget import BUDGET_FIELDS

# LSH hashing seed of every evaluation, so that arms are scored on the same buckets
DEFAULT_HASH_SEED = 1234


@dataclass(frozen=True)
class TrainConfig(StrictConfig):
    batch_size: int = 32
    grad_accum: int = 1               # micro-batches per optimizer step
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    warmup: float = 0.06              # fraction of the budget spent warming up
    clip_norm: float = 1.0            # 0 disables clipping
    # budget: the run stops at the first one reached; at least one must be set. Unset is None
    # here as in every Budget (core.train.budget); a 0 given means unset too
    max_steps: int | None = None
    max_tokens: int | None = None     # non-padding tokens
    max_seconds: float | None = None
    max_flops: float | None = None    # training FLOPs, counted as flops_per_step per optimizer step
    # the measured FLOPs of ONE OPTIMIZER STEP: forward and backward of every micro-batch on
    # every rank (grad_accum x world_size batches), set by the caller from
    # core.measure.measured_flops; the trainer adds it up in Progress.flops (and in every
    # evaluation's "flops"), so it is also worth setting without max_flops
    flops_per_step: float = 0.0
    eval_every: int = 0               # steps; 0 evaluates only at the end
    # a held-out MLM loss curve: this many evaluations spread evenly over the budget (by
    # the fraction used, so it works for step, token and time budgets), each on the first
    # `curve_examples` held-out examples (cheap); the final evaluation uses every example
    eval_points: int = 0
    curve_examples: int = 512
    eval_batch_size: int = 32
    checkpoint_every: int = 0         # steps; 0 writes only at the end (if an out_dir is given)
    log_every: int = 10
    device: str = "auto"
    # core.device: auto (bf16 autocast on CUDA, fp32 on a CPU), bf16 (autocast on either:
    # the tests run the mixed-precision path on a CPU) or fp32 (no autocast)
    precision: str = "auto"
    seed: int = 0
    hash_seed: int = DEFAULT_HASH_SEED  # LSH hashing seed for evaluation
    compile: bool = False             # torch.compile the model (core.model.compile_model); eager fallback
    unpad: bool = True                # pad tokens skip the linear layers (core.model.unpad); same outputs
    init_from: str = ""               # warm start: an exported arm or a run's arm directory
    # a longer position table than init_from's: "repeat" its learned rows (Longformer) or
    # leave it "random" (KoBigBird); core.interop.warm_start says why each
    init_positions: str = "repeat"
    # the learning-rate schedule (core.optim): linear (warm-up, linear decay to 0) or wsd
    # (warm-up, constant, then a 1 - sqrt cooldown over the last `decay` of the budget)
    schedule: str = "linear"
    decay: float = 0.2                # wsd: the cooldown's fraction of the budget
    warmup_steps: int = 0             # > 0: warm up over this many steps, not a fraction of the budget
    # the MLM output bias at the start of a fresh run: "unigram" starts it at the log
    # frequencies of the training split's tokens (the class prior: the loss starts at the
    # unigram entropy instead of log V, and the bias need not travel ~10 nats at ~lr a step);
    # "zero" is BERT's initialisation
    mlm_bias: str = "unigram"
    # the optimizer (core.optim): adamw | stable_adamw (torch-optimi, ModernBERT's) | muon
    # (torch.optim.Muon on the encoder's matrices, AdamW on the rest: core.optim.muon_split) |
    # adafactor (torch.optim.Adafactor). `lr` is an AdamW-scale rate: each group trains at lr x
    # its scale, so that one --lr-search grid brackets every optimizer
    optimizer: str = "adamw"
    # muon: the Muon group's rate over lr (the AdamW groups train at lr); with Muon's update
    # scaled to AdamW's RMS ("match_rms_adamw", Moonlight) the AdamW rate carries over: 1;
    # "original" (Keller Jordan's scaling, sqrt(max(1, rows / cols))) wants about 20-100
    muon_lr_ratio: float = 1.0
    muon_adjust_lr: str = "match_rms_adamw"
    # adafactor: its relative step size over lr. Adafactor's step is relative to each
    # parameter's RMS (0.02 at this project's initialisation) and capped at 1/sqrt(step), so
    # a relative step of 100 x lr moves a weight about as far as AdamW's lr does
    # (docs/training.md#optimizers)
    adafactor_lr_ratio: float = 100.0
    # the batch-size ramp: over the first `batch_size_warmup` of the budget each step's batch
    # grows linearly from `batch_size_warmup_start` of the configured batch to all of it (cramming:
    # over 60% of the budget; ModernBERT: over its first 50B tokens), "by" the batch itself
    # (each micro-batch holds that fraction of batch_size examples) or by gradient accumulation
    # (a step takes that fraction of grad_accum micro-batches); 0 disables it
    batch_size_warmup: float = 0.0
    batch_size_warmup_start: float = 0.25
    batch_size_warmup_by: str = "batch"

    def check_flops(self) -> None:
        """A FLOP budget counts measured FLOPs: checked when training starts, since the
        measurement belongs to the run stage (a plan resolves configs without a device)."""
        if self.max_flops and not self.flops_per_step:
            raise ValueError(f"max_flops={self.max_flops:g} needs flops_per_step > 0: the measured FLOPs of one "
                             "optimizer step (core.measure.measured_flops(...)['flops_per_step'] x grad_accum)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        for name in BUDGET_FIELDS:
            if getattr(self, name) == 0:
                object.__setattr__(self, name, None)
        if not any(getattr(self, name) for name in BUDGET_FIELDS):
            raise ValueError("set a budget: max_steps, max_tokens, max_seconds or max_flops (> 0)")
        if (self.max_flops or 0) < 0 or self.flops_per_step < 0:
            raise ValueError(f"max_flops and flops_per_step must be >= 0, got {self.max_flops} and "
                             f"{self.flops_per_step}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.eval_points < 0 or self.curve_examples < 0:
            raise ValueError("eval_points and curve_examples must be >= 0")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the budget in [0, 1), got {self.warmup}")
        check_schedule(self.schedule)
        # imported here, not above: the config's field names are read without torch (the CLI's `list`)
        from core.device import check_precision
        from core.interop.warm_start import POSITION_RECIPES

        check_choice("init_positions", self.init_positions, POSITION_RECIPES)
        check_precision(self.precision)
        check_choice("mlm_bias", self.mlm_bias, ("unigram", "zero"))
        if not 0 < self.decay < 1:
            raise ValueError(f"decay is the cooldown's fraction of the budget in (0, 1), got {self.decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0 (0: the fractional warmup), got {self.warmup_steps}")
        self._check_recipe()
        if self.schedule == "wsd" and not self.warmup_steps and self.warmup + self.decay >= 1:
            raise ValueError(f"schedule 'wsd': warmup {self.warmup} + decay {self.decay} >= 1, so the warm-up "
                             "runs into the cooldown; lower warmup or decay (or set warmup_steps)")

    def _check_recipe(self) -> None:
        check_optimizer(self.optimizer)
        check_choice("muon_adjust_lr", self.muon_adjust_lr, MUON_ADJUST_LR)
        check_choice("batch_size_warmup_by", self.batch_size_warmup_by, ("batch", "accum"))
        for name in ("muon_lr_ratio", "adafactor_lr_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0 (a rate over lr), got {value!r}")
        if not 0 <= self.batch_size_warmup < 1:
            raise ValueError(f"batch_size_warmup is the fraction of the budget the batch ramp lasts, in [0, 1) "
                             f"(0: no ramp), got {self.batch_size_warmup}")
        if not 0 < self.batch_size_warmup_start <= 1:
            raise ValueError(f"batch_size_warmup_start is the first step's batch as a fraction of the configured "
                             f"one, in (0, 1], got {self.batch_size_warmup_start}")
        if not self.batch_size_warmup:
            return
        if self.batch_size_warmup_by == "accum" and self.grad_accum < 2:
            raise ValueError("batch_size_warmup_by='accum' ramps the micro-batches a step takes, so it needs "
                             f"grad_accum >= 2 (got {self.grad_accum}); ramp by 'batch' or raise grad_accum")
        if self.warmup_steps:
            raise ValueError(f"batch_size_warmup with warmup_steps={self.warmup_steps}: a batch ramp makes steps "
                             "unequal, so a warm-up counted in steps no longer follows the tokens; use the "
                             "fractional warmup (and no --ladder, which sets warmup_steps)")
