"""The trainer: AdamW, warm-up and linear decay over a budget in steps, tokens or seconds.

Design notes for the next engineer:
- The learning-rate schedule is a function of *progress*, the largest fraction of any
  budget used so far, so the same schedule serves step, token and wall-clock budgets.
  Step and token budgets are exactly reproducible; a time budget is not (by nature).
- A checkpoint holds model, optimizer, progress (which drives the schedule), RNG states
  and the data position; resuming reproduces an uninterrupted run exactly on CPU.
- Writes go through `atomic_save` (temporary file, then rename), and only rank 0 writes,
  so the same code can run under torchrun/DDP: each rank takes every world_size-th batch.
- A non-finite loss stops the run with status "nan" before the optimizer touches the
  weights, so the last checkpoint on disk is the last good one.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.config_base import StrictConfig
from core.device import autocast, pick_device, synchronize, to_device
from core.evaluate import DEFAULT_HASH_SEED, evaluate
from core.model import PretrainingModel
from core.optim import adamw

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    pass


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
    # budget: the run stops at the first one reached; at least one must be set
    max_steps: int = 0
    max_tokens: int = 0               # non-padding tokens
    max_seconds: float = 0.0
    eval_every: int = 0               # steps; 0 evaluates only at the end
    eval_batch_size: int = 32
    checkpoint_every: int = 0         # steps; 0 writes only at the end (if an out_dir is given)
    log_every: int = 10
    device: str = "auto"
    seed: int = 0
    hash_seed: int = DEFAULT_HASH_SEED  # LSH hashing seed for evaluation

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if not (self.max_steps or self.max_tokens or self.max_seconds):
            raise ValueError("set a budget: max_steps, max_tokens or max_seconds (> 0)")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the budget in [0, 1), got {self.warmup}")


@dataclass
class Progress:
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    epoch: int = 0
    batch: int = 0        # next batch index within the epoch


@dataclass
class TrainResult:
    status: str                          # ok | nan | oom | error
    error: str | None
    progress: Progress
    train_loss: list[list[float]]        # [tokens, loss] points
    train_loss_time: list[list[float]]   # [seconds, loss] points
    evals: list[dict] = field(default_factory=list)
    final_eval: dict = field(default_factory=dict)
    step_times: list[tuple[int, float]] = field(default_factory=list)  # this session's steps

    def speed(self, warmup: int = 2) -> dict:
        """Median/min/max training tokens per second over the steps after `warmup`."""
        import statistics

        timed = self.step_times[warmup:] or self.step_times
        if not timed:
            return {}
        rates = [t / s for t, s in timed if s > 0]
        return {"tokens_per_s": statistics.median(rates), "tokens_per_s_min": min(rates),
                "tokens_per_s_max": max(rates), "timed_steps": len(rates)}


def atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Never unpickles arbitrary objects; a damaged file is named, not a deep traceback."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, bad magic, unsafe pickle...
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated and cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Delete it to start the run "
            "over, or restore it from a backup"
        ) from None


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Trainer:
    def __init__(self, model: PretrainingModel, data, cfg: TrainConfig, out_dir: str | Path | None = None,
                 progress_bar: bool = True, on_step=None, eval_data=None):
        self.model, self.data, self.cfg = model, data, cfg
        # held-out sets to score on; an ablation passes its base arm's, so that arms with
        # different masking or packing are still scored on identical examples and masks
        self.eval_data = eval_data if eval_data is not None else data
        self.out_dir = Path(out_dir) if out_dir else None
        self.device = pick_device(cfg.device)
        self.rank, self.world = _rank()
        self.progress_bar = progress_bar and self.rank == 0
        self.on_step = on_step  # called after every optimizer step (runner progress, tests)
        torch.manual_seed(cfg.seed)
        model.to(self.device)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        self.optimizer = adamw(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
        self.progress = Progress()
        self.train_loss: list[list[float]] = []
        self.train_loss_time: list[list[float]] = []
        self.evals: list[dict] = []
        self.step_times: list[tuple[int, float]] = []

    # -- schedule ---------------------------------------------------------------------------
    def fraction_done(self) -> float:
        c, p = self.cfg, self.progress
        parts = [p.step / c.max_steps if c.max_steps else 0.0,
                 p.tokens / c.max_tokens if c.max_tokens else 0.0,
                 p.seconds / c.max_seconds if c.max_seconds else 0.0]
        return min(1.0, max(parts))

    def lr_factor(self) -> float:
        f, w = self.fraction_done(), self.cfg.warmup
        if w and f < w:
            return max(f / w, 1e-3)
        return max(0.0, (1.0 - f) / (1.0 - w)) if w < 1 else 1.0

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT if self.out_dir else None

    def save(self) -> None:
        if self.checkpoint_path is None or self.rank != 0:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": self.progress.__dict__.copy(),
            "train_loss": self.train_loss,
            "train_loss_time": self.train_loss_time,
            "evals": self.evals,
            # the data pipeline draws from explicitly seeded generators; torch's RNG drives dropout
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "model_config": self.model.cfg.to_json(),
        }
        atomic_save(state, self.checkpoint_path)

    def resume(self) -> bool:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return False
        state = load_checkpoint(path)
        if state.get("model_config") != self.model.cfg.to_json():
            raise CheckpointError(f"checkpoint {path} belongs to a different model config; "
                                  "use another --out directory or delete the checkpoint")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress(**state["progress"])
        self.train_loss, self.train_loss_time = state["train_loss"], state["train_loss_time"]
        self.evals = state["evals"]
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return True

    # -- the loop -----------------------------------------------------------------------------
    def _done(self) -> bool:
        c, p = self.cfg, self.progress
        return bool((c.max_steps and p.step >= c.max_steps) or (c.max_tokens and p.tokens >= c.max_tokens)
                    or (c.max_seconds and p.seconds >= c.max_seconds))

    def _batches(self):
        c, p = self.cfg, self.progress
        for epoch, b, batch in self.data.train_batches(c.batch_size, p.epoch, p.batch):
            p.epoch, p.batch = epoch, b + 1
            if b % self.world == self.rank:
                yield batch

    def train(self, resume: bool = True) -> TrainResult:
        if resume:
            self.resume()
        model, c, p = self.model, self.cfg, self.progress
        model.train()
        batches = self._batches()
        bar = _ProgressBar(self, enabled=self.progress_bar)
        status, error = "ok", None
        with bar:
            while not self._done():
                t0 = time.perf_counter()
                self.optimizer.zero_grad(set_to_none=True)
                loss_sum, tokens, data_s = 0.0, 0, 0.0
                for _ in range(c.grad_accum):
                    t_data = time.perf_counter()
                    batch = to_device(next(batches), self.device)
                    data_s += time.perf_counter() - t_data
                    if model.sentence_head is None:
                        batch.pop("sentence_labels", None)
                    with autocast(self.device):
                        loss = model(**batch).loss / c.grad_accum
                    loss.backward()
                    loss_sum += float(loss.detach())
                    tokens += int(batch["attention_mask"].sum())
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip_norm or float("inf"))
                if not math.isfinite(loss_sum) or not torch.isfinite(grad_norm):
                    status = "nan"
                    error = (f"loss {loss_sum} / gradient norm {float(grad_norm)} at step {p.step + 1}: training "
                             f"stopped before the update. The last good checkpoint (step {self._saved_step()}) "
                             "is kept. Lower the learning rate or enable gradient clipping")
                    break
                for group in self.optimizer.param_groups:
                    group["lr"] = c.lr * self.lr_factor()
                self.optimizer.step()
                synchronize(self.device)
                p.step += 1
                p.tokens += tokens * self.world
                elapsed = time.perf_counter() - t0
                p.seconds += elapsed
                # (tokens, seconds of forward+backward+optimizer) per step, batch loading excluded
                self.step_times.append((tokens * self.world, elapsed - data_s))
                if p.step % c.log_every == 0 or p.step == 1 or self._done():
                    self.train_loss.append([p.tokens, loss_sum])
                    self.train_loss_time.append([round(p.seconds, 4), loss_sum])
                bar.update(loss_sum, tokens / max(time.perf_counter() - t0, 1e-9))
                if c.eval_every and p.step % c.eval_every == 0 and not self._done():
                    self.evals.append({"step": p.step, "tokens": p.tokens, "seconds": p.seconds,
                                       **evaluate(model, self.eval_data, self.device, c.eval_batch_size, c.hash_seed)})
                if c.checkpoint_every and p.step % c.checkpoint_every == 0:
                    self.save()
                if self.on_step is not None:
                    self.on_step(self)
        final = {}
        if status == "ok":
            final = evaluate(model, self.eval_data, self.device, c.eval_batch_size, c.hash_seed)
            self.evals.append({"step": p.step, "tokens": p.tokens, "seconds": p.seconds, **final})
            self.save()
        return TrainResult(status, error, self.progress, self.train_loss, self.train_loss_time, self.evals, final,
                           self.step_times)

    def _saved_step(self) -> int | str:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return "none written"
        return load_checkpoint(path)["progress"]["step"]


class _ProgressBar:
    """A rich progress bar with loss and tokens/s; silent when disabled."""

    def __init__(self, trainer: Trainer, enabled: bool):
        self.trainer, self.enabled = trainer, enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                      TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                                      TimeElapsedColumn(), TimeRemainingColumn(), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=1000, loss="-", tps="-")
        return self

    def update(self, loss: float, tps: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=1000 * self.trainer.fraction_done(),
                                  loss=f"{loss:.3f}", tps=f"{tps:,.0f}")

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
