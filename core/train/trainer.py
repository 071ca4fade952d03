"""The trainer: an optimizer (AdamW, StableAdamW, Muon or Adafactor: core.optim), a
learning-rate schedule (warm-up, then linear decay or warmup-stable-decay) over a budget in
steps, tokens, FLOPs or seconds, an optional batch-size ramp and masking-rate schedule.

Design notes for the next engineer:
- The learning-rate schedule is a function of *progress*, the largest fraction of any
  budget used so far, so the same schedule serves step, token, FLOP and wall-clock budgets.
  Step, token and FLOP budgets are exactly reproducible; a time budget is not (by nature).
  FLOPs are counted, not timed: `cfg.flops_per_step` (measured by the caller) per
  optimizer step, so a FLOP budget of N stops at step ceil(N / flops_per_step).
- `train(until=...)` pauses a run part-way along its budget (checkpoint written, no final
  evaluation): the ladder pauses one long wsd run at each shorter budget's cooldown start.
- Checkpoints (`core.train.checkpoint`) hold everything a resume needs; resuming
  reproduces an uninterrupted run exactly on CPU. Whether a checkpoint may be continued is
  decided there (`resume_decision`); the trainer loads the state it is given.
- Under torchrun (`core.train.distributed`) every rank takes its share of each step's
  batches and gradients are averaged: global batch = batch_size x world_size x
  grad_accum. The data position, losses, tokens and seconds are global, so a checkpoint
  resumes at any world size. Only rank 0 evaluates and writes; the others wait for it in
  the next step's all-reduce. Rank 0 decides whether to resume and tells the others.
- A non-finite loss stops the run with status "nan" before the optimizer touches the
  weights, so the last checkpoint on disk is the last good one.
- An optional `tracker` (core.train.tracking: TensorBoard, W&B, MLflow) is handed the
  logged training points and every held-out evaluation, at the budget's x-axis; it only
  watches, and only rank 0 has one.
- The recipe follows the budget's fraction as the rate does, read from the progress at
  each step's start (so a resumed run and every rank agree): a batch ramp
  (`cfg.batch_size_warmup`) sets how many examples the step takes, a masking-rate schedule
  (`data.cfg.mask_prob_end`) the rate its dynamic masks are drawn at. A ramped run reads
  the training examples as one stream (each epoch's order, cut where the configured batch
  cuts it), so that it sees the same examples as a fixed-batch run, in smaller steps at first;
  its position is `Progress.example`, and a step's FLOPs are its share of a full step's.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from core.device import autocast, pick_device, synchronize, to_device
from core.interop import load_arm, warm_start
from core.model import PretrainingModel, compile_model
from core.model.local import compile_seconds
from core.optim import OptimizerSettings, batch_ramp, build_optimizer, lr_factor, round_half_up
from core.train.budget import BUDGET_FIELDS, fraction_under, reached
from core.train.checkpoint import (
    CHECKPOINT,
    atomic_save,
    fingerprint_of,
    load_checkpoint,
    resume_decision,
    trajectory_identity,
)
from core.train.config import TrainConfig
from core.train.distributed import (
    all_reduce_sum,
    average_gradients,
    broadcast_object,
    broadcast_parameters,
    init_from_env,
)
from core.train.evaluation import evaluate
from core.train.progress_bar import ProgressBar
from core.train.tracking import Tracker, eval_scalars, step_scalars, x_axis


@dataclass
class Progress:
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    epoch: int = 0
    batch: int = 0        # next batch index within the epoch
    flops: float = 0.0    # training FLOPs: cfg.flops_per_step per optimizer step
    compile_seconds: float = 0.0  # compiling attention kernels (core.model.local): kept out of `seconds`
    example: int = 0      # a batch ramp's position: the next example of the epoch's stream (`batch` otherwise)


@dataclass
class TrainResult:
    status: str                          # ok | nan | oom | error | paused (stopped at `until`, not evaluated)
    error: str | None
    progress: Progress
    train_loss: list[list[float]]        # [tokens, loss] points
    train_loss_time: list[list[float]]   # [seconds, loss] points
    evals: list[dict] = field(default_factory=list)
    final_eval: dict = field(default_factory=dict)
    step_times: list[tuple[int, float]] = field(default_factory=list)  # this session's steps
    # how this run began: fresh, resumed, restarted, extended, branched (a wsd run resumed
    # from the stable phase of a longer one: the ladder's rungs)
    resume: dict = field(default_factory=dict)
    warm_start: str | None = None        # what init_from carried over, in one line
    stopped_by: str | None = None        # the budget that ended training: steps, tokens, flops or seconds

    def speed(self, warmup: int = 2) -> dict:
        """Median/min/max training tokens per second over the steps after `warmup`."""
        timed = self.step_times[warmup:] or self.step_times
        if not timed:
            return {}
        rates = [t / s for t, s in timed if s > 0]
        return {"tokens_per_s": statistics.median(rates), "tokens_per_s_min": min(rates),
                "tokens_per_s_max": max(rates), "timed_steps": len(rates)}


class Trainer:
    def __init__(self, model: PretrainingModel, data, cfg: TrainConfig, out_dir: str | Path | None = None,
                 progress_bar: bool = True, on_step=None, eval_data=None, tracker: Tracker | None = None):
        cfg.check_flops()
        self.model, self.data, self.cfg = model, data, cfg
        # held-out sets to score on; an ablation passes its base arm's, so that arms with
        # different masking or packing are still scored on identical examples and masks
        self.eval_data = eval_data if eval_data is not None else data
        self.out_dir = Path(out_dir) if out_dir else None
        pick_device(cfg.device)  # a bad name fails here, before any process group
        self.dist, self.device = init_from_env(cfg.device)
        self.rank, self.world = self.dist.rank, self.dist.size
        self.progress_bar = progress_bar and self.rank == 0
        self.on_step = on_step  # called after every optimizer step (runner progress, tests)
        self.tracker = tracker if self.rank == 0 else None  # watches only (core.train.tracking)
        torch.manual_seed(cfg.seed)
        model.to(self.device)
        broadcast_parameters(model, self.dist)
        model.unpad = cfg.unpad
        if cfg.compile:
            compile_model(model)
        self.optimizer = build_optimizer(model, OptimizerSettings.of(cfg))
        self.progress = Progress()
        self.train_loss: list[list[float]] = []
        self.train_loss_time: list[list[float]] = []
        self.evals: list[dict] = []
        self.step_times: list[tuple[int, float]] = []
        # what this checkpoint must match to be continued (the budget apart)
        self.identity = trajectory_identity(model.cfg, cfg, data, self.eval_data, self.world)
        self.fingerprint = fingerprint_of(self.identity)
        self.resume_info: dict = {"kind": "fresh"}
        self.warm_start_line: str | None = None
        self.lr_position: dict | None = None  # the progress at which the last step's rate was set
        # the final evaluation, kept in the checkpoint with the step it scored: a re-run of a
        # finished unit (a later step of the arm failed) reuses it instead of evaluating again
        self.final_eval: dict | None = None
        self._step_share = 1.0  # the step's examples over a full step's (a batch ramp's early steps: less)

    # -- schedule ---------------------------------------------------------------------------
    def fraction_done(self) -> float:
        return fraction_under(self.progress.__dict__, self._budget())

    def lr_factor(self) -> float:
        c = self.cfg
        return lr_factor(c.schedule, self.fraction_done(), c.warmup, c.decay, self.progress.step, c.warmup_steps)

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
            "identity": json.dumps(self.identity),
            "fingerprint": self.fingerprint,
            "budget": self._budget(),
            "lr_position": self.lr_position,
            "final_eval": self.final_eval,
        }
        atomic_save(state, self.checkpoint_path)

    def _budget(self) -> dict:
        return {k: getattr(self.cfg, k) for k in BUDGET_FIELDS}

    def resume(self) -> bool:
        """Continue from the checkpoint where `resume_decision` (core.train.checkpoint)
        allows it; `resume_info` says how this run began, and why not when one is refused.
        Rank 0 decides and every rank makes its choice."""
        state, info = self._resume_decision() if self.rank == 0 else (None, None)
        state, info = broadcast_object((state, info), self.dist)  # every rank makes rank 0's choice
        if info is not None:
            self.resume_info = info
        if state is None:
            return False
        self._load_state(state)
        return True

    def _resume_decision(self) -> tuple[dict | None, dict | None]:
        """The checkpoint to continue (or None), and how this run begins (None: fresh)."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return None, None
        return resume_decision(load_checkpoint(path), path, self.identity, self._budget(), self.cfg,
                               getattr(self.data, "cfg", None))

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress(**state["progress"])
        if "flops" not in state["progress"]:  # written before FLOPs were counted
            self.progress.flops = self.progress.step * self.cfg.flops_per_step
        self.train_loss, self.train_loss_time = state["train_loss"], state["train_loss_time"]
        self.evals = state["evals"]
        self.lr_position = state.get("lr_position")
        self.final_eval = state.get("final_eval")
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def _done_under(self, budget: dict) -> bool:
        return fraction_under(self.progress.__dict__, budget) >= 1.0

    # -- the loop -----------------------------------------------------------------------------
    def _done(self) -> bool:
        return self._done_under(self._budget())

    def _batches(self):
        """Each step's micro-batches, as functions that build them: rank r's micro-batch j of a
        step is global batch start + j x world + r. The saved position is the next step's
        start, the same on every rank and for any world size."""
        c, p = self.cfg, self.progress
        if c.batch_size_warmup:
            yield from self._ramped_batches()
            return
        per_epoch = self.data.batches_per_epoch(c.batch_size)
        while True:
            start = p.epoch * per_epoch + p.batch
            p.epoch, p.batch = divmod(start + self.world * c.grad_accum, per_epoch)
            rate = self._mask_rate()
            yield [partial(self.data.train_batch, c.batch_size, start + j * self.world + self.rank, **rate)
                   for j in range(c.grad_accum)]

    def step_shape(self) -> tuple[int, int]:
        """(micro-batches per rank, examples per micro-batch) of the step about to be taken:
        grad_accum and batch_size, or what the batch ramp gives at this fraction of the budget."""
        c = self.cfg
        if not c.batch_size_warmup:
            return c.grad_accum, c.batch_size
        share = batch_ramp(self.fraction_done(), c.batch_size_warmup, c.batch_size_warmup_start)
        if c.batch_size_warmup_by == "accum":
            return max(1, round_half_up(c.grad_accum * share)), c.batch_size
        return c.grad_accum, max(1, round_half_up(c.batch_size * share))

    def _ramped_batches(self):
        """A batch ramp's steps: world x k micro-batches of b examples each (`step_shape`),
        taken in order from the epoch's stream (its order cut to whole configured batches, as
        a fixed-batch run reads it); a micro-batch that would cross the stream's end starts
        the next epoch (the rest is dropped, as the last partial batch is)."""
        c, p, data = self.cfg, self.progress, self.data
        length = data.batches_per_epoch(c.batch_size) * c.batch_size
        if length == 0:
            data.train_batch(c.batch_size, 0)  # the one-line error of a batch larger than the data
        while True:
            (k, b), rate = self.step_shape(), self._mask_rate()
            mine = []
            for g in range(self.world * k):
                if p.example + b > length:
                    p.epoch, p.example = p.epoch + 1, 0
                if g % self.world == self.rank:
                    mine.append(partial(self._examples, p.epoch, p.example, b, rate))
                p.example += b
            yield mine

    def _examples(self, epoch: int, start: int, n: int, rate: dict) -> dict:
        order = self.data.epoch_order(epoch)
        return self.data.collate(self.data.train, order[start:start + n], epoch=epoch, **rate)

    def _mask_rate(self) -> dict:
        """{"mask_prob": the rate} for the step about to be taken where the data schedules its
        masking rate (`DataConfig.mask_prob_end`), else {} (the data's own rate)."""
        cfg = getattr(self.data, "cfg", None)
        if getattr(cfg, "mask_prob_end", None) is None:
            return {}
        return {"mask_prob": cfg.mask_prob_at(self.fraction_done())}

    def warm_start(self) -> str | None:
        """Copy `cfg.init_from`'s weights where shapes allow (a fresh run only: a resumed one
        already holds them); the one-line account of what was and was not carried over."""
        if not self.cfg.init_from:
            return None
        report = warm_start(self.model, load_arm(self.cfg.init_from).model, self.cfg.init_positions)
        if self.rank == 0:
            print(report.line(), file=sys.stderr)
        return report.line()

    def _init_output_bias(self) -> None:
        """A fresh run's MLM output bias at the training tokens' log frequencies (`mlm_bias`);
        a warm start then copies the source's bias over it where it has one."""
        if self.cfg.mlm_bias != "unigram" or not hasattr(self.data, "label_log_probs"):
            return
        log_p = torch.as_tensor(self.data.label_log_probs(), dtype=torch.float32)
        with torch.no_grad():
            bias = self.model.mlm_head.bias
            n = min(len(log_p), bias.numel())  # a table larger than the tokenizer: its extra rows stay unlikely
            bias.fill_(float(log_p.min()))
            bias[:n] = log_p[:n].to(bias.device, bias.dtype)

    def train(self, resume: bool = True, until: dict | None = None) -> TrainResult:
        """Train to the budget, or with `until` (a budget dict, e.g. {"max_steps": 60}) only
        until that is reached: status "paused", checkpoint written, no final evaluation."""
        if not (resume and self.resume()):
            self._init_output_bias()
            self.warm_start_line = self.warm_start()
        self.model.train()
        batches = self._batches()
        status, error = "ok", None
        with ProgressBar(self, enabled=self.progress_bar) as bar:
            while not self._done():
                if until is not None and self._done_under(until):
                    status = "paused"
                    break
                t0, compiled = time.perf_counter(), compile_seconds()
                losses, tokens, data_s, grad_norm = self._forward_backward(batches)
                loss = losses[0]
                if not math.isfinite(loss) or not torch.isfinite(grad_norm):
                    status, error = "nan", self._nan_message(loss, grad_norm)
                    break
                self._update()
                compiling = compile_seconds() - compiled  # a kernel built once per shape: not training time
                self.progress.compile_seconds += compiling
                elapsed, data_s = self._agreed_seconds(time.perf_counter() - t0 - compiling, data_s)
                self._record(losses, tokens, elapsed, data_s, float(grad_norm))
                bar.update(loss, tokens / max(time.perf_counter() - t0, 1e-9))
                self._after_step()
        return self._finish(status, error)

    def _forward_backward(self, batches) -> tuple[list[float], int, float, torch.Tensor]:
        """Gradients of one optimizer step (all micro-batches): [loss, MLM loss, sentence
        loss] (the last 0 without a sentence task), tokens, data seconds, grad norm."""
        model, c = self.model, self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        parts, tokens, data_s = torch.zeros(3, device=self.device), 0, 0.0
        k, b = self.step_shape()  # what `batches` gives this step (the ramp's share of a full step's FLOPs)
        self._step_share = (k * b) / (c.grad_accum * c.batch_size)
        t_data = time.perf_counter()
        micro = next(batches)
        data_s += time.perf_counter() - t_data
        for make in micro:
            t_data = time.perf_counter()
            batch = to_device(make(), self.device)
            data_s += time.perf_counter() - t_data
            if model.sentence_head is None:
                batch.pop("sentence_labels", None)
            with autocast(self.device, c.precision):
                out = model(**batch)
            (out.loss / len(micro)).backward()
            sentence = out.sentence_loss if out.sentence_loss is not None else torch.zeros((), device=self.device)
            parts += torch.stack([out.loss, out.mlm_loss, sentence]).detach().float() / len(micro)
            tokens += int(batch["attention_mask"].sum())
        average_gradients(model.parameters(), self.dist)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip_norm or float("inf"))
        if self.world > 1:  # global mean losses and token count: every rank logs and stops alike
            summed = all_reduce_sum(torch.cat([parts.double(), parts.new_tensor([tokens]).double()]), self.dist)
            parts, tokens = summed[:3] / self.world, int(summed[3])
        return parts.tolist(), tokens, data_s, grad_norm

    def _agreed_seconds(self, elapsed: float, data_s: float) -> tuple[float, float]:
        """The ranks' mean step time: a time budget must end on the same step everywhere."""
        if self.world == 1:
            return elapsed, data_s
        t = all_reduce_sum(torch.tensor([elapsed, data_s], dtype=torch.float64, device=self.device), self.dist)
        return float(t[0]) / self.world, float(t[1]) / self.world

    def _nan_message(self, loss: float, grad_norm: torch.Tensor) -> str:
        return (f"loss {loss} / gradient norm {float(grad_norm)} at step {self.progress.step + 1}: training "
                f"stopped before the update. The last good checkpoint (step {self._saved_step()}) "
                "is kept. Lower the learning rate or enable gradient clipping")

    def _update(self) -> None:
        self.lr_position = self.progress.__dict__.copy()
        factor = self.lr_factor()
        for group in self.optimizer.param_groups:  # each group at its scale of the rate (core.optim.param_groups)
            group["lr"] = self.cfg.lr * group.get("lr_scale", 1.0) * factor
        self.optimizer.step()
        synchronize(self.device)

    def _record(self, losses: list[float], tokens: int, elapsed: float, data_s: float, grad_norm: float) -> None:
        """Progress, step time, and the curve points: [x, loss, MLM loss, sentence loss]."""
        c, p = self.cfg, self.progress
        p.step += 1
        p.tokens += tokens  # all ranks' tokens
        p.seconds += elapsed
        # all ranks' micro-batches: flops_per_step is per optimizer step (of the full batch; a ramp's
        # smaller steps count their share)
        p.flops += c.flops_per_step * self._step_share if c.batch_size_warmup else c.flops_per_step
        # (tokens, seconds of forward+backward+optimizer) per step, batch loading excluded
        self.step_times.append((tokens, elapsed - data_s))
        if p.step % c.log_every == 0 or p.step == 1 or self._done():
            self.train_loss.append([p.tokens, *losses])
            self.train_loss_time.append([round(p.seconds, 4), *losses])
            if self.tracker is not None:
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step was taken at
                rate = tokens / max(elapsed - data_s, 1e-9)  # as TrainResult.speed: batch loading excluded
                self._track(step_scalars(losses, lr, grad_norm, rate, self._where(),
                                         self.model.sentence_head is not None))

    def _evaluate(self, per_example: bool = False) -> dict:
        """Scores now; the curve keeps the summaries, the final scores also per example."""
        c = self.cfg
        scores = evaluate(self.model, self.eval_data, self.device, c.eval_batch_size, c.hash_seed, per_example,
                          precision=c.precision)
        summary = {k: v for k, v in scores.items() if not isinstance(v, list | str)}
        self.evals.append({**self._where(), **summary})
        self._track(eval_scalars(summary))
        return scores

    def _where(self) -> dict:
        """Where training stands, for an evaluation point: the x of every curve."""
        p = self.progress
        return {"step": p.step, "tokens": p.tokens, "seconds": p.seconds, "flops": p.flops}

    def _after_step(self) -> None:
        c, p = self.cfg, self.progress
        if self.rank != 0:  # rank 0 evaluates and writes alone
            if self.on_step is not None:
                self.on_step(self)
            return
        if c.eval_every and p.step % c.eval_every == 0 and not self._done():
            self._evaluate()
        if c.eval_points and not self._done() and \
                int(self.fraction_done() * c.eval_points) > sum(1 for e in self.evals if e.get("curve")):
            self._curve_point()
        if c.checkpoint_every and p.step % c.checkpoint_every == 0:
            self.save()
        if self.on_step is not None:
            self.on_step(self)

    def _curve_point(self) -> None:
        """A cheap point of the held-out curve. `mlm_example_losses` is each curve example's
        MLM loss summed over its predicted tokens, as the final `eval_mlm_example_loss` (5
        significant digits); its token counts are the final `eval_mlm_example_tokens[:n]`
        (the same first examples, the same fixed masks). Two arms can so be paired example
        by example at any point of the curve, e.g. at equal FLOPs."""
        c = self.cfg
        scores = evaluate(self.model, self.eval_data, self.device, c.eval_batch_size, c.hash_seed,
                          per_example=True, mlm_limit=c.curve_examples or None, precision=c.precision)
        losses = [float(f"{x:.5g}") for x in scores.get("eval_mlm_example_loss", [])]
        unigram = {k: scores[k] for k in ("eval_mlm_unigram_xent", "eval_mlm_unigram_gap", "eval_mlm_unigram_gap_se")
                   if k in scores}
        self.evals.append({**self._where(), "curve": True, "eval_mlm_loss": scores["eval_mlm_loss"],
                           "eval_mlm_acc": scores["eval_mlm_acc"], **unigram, "mlm_example_losses": losses})
        self._track(eval_scalars(scores, curve=True))

    def _track(self, scalars: dict) -> None:
        if self.tracker is not None:
            self.tracker.log(scalars, int(self._where()[x_axis(self.cfg)]))

    def _finish(self, status: str, error: str | None) -> TrainResult:
        final = {}
        if status == "paused" and self.rank == 0:
            self.save()
        if status == "ok" and self.rank == 0:
            self.save()  # the trained weights first: if the evaluation fails, a re-run trains nothing again
            final = self._final_evaluation()
        return TrainResult(status, error, self.progress, self.train_loss, self.train_loss_time, self.evals, final,
                           self.step_times, self.resume_info, self.warm_start_line,
                           reached(self.progress.__dict__, self._budget()))

    def _final_evaluation(self) -> dict:
        """The last curve point and the full held-out evaluation at the step training ended,
        each taken once: a checkpoint that holds them (a finished unit run again because a
        later step of its arm failed) gives them back unchanged."""
        step = self.progress.step
        if self.final_eval is not None and self.final_eval.get("step") == step:
            return self.final_eval["scores"]
        if self.cfg.eval_points and not any(e.get("curve") and e["step"] == step for e in self.evals):
            self._curve_point()  # the curve ends where training ends
        scores = self._evaluate(per_example=True)
        self.final_eval = {"step": step, "scores": scores}
        self.save()
        return scores

    def _saved_step(self) -> int | str:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return "none written"
        return load_checkpoint(path)["progress"]["step"]
