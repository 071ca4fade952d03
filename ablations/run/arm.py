"""Training one resolved arm into one results row: data (shared between arms), model,
trainer, then the measurements that stand beside the losses.

Failures are results: OOM is recorded as "oom", a NaN stop as "nan", any other exception
in the arm as "error" with its message, and the run goes on. A data problem (corpus,
tokenizer) is not an arm's failure: every arm would meet it, so it stops the run at once.

With `--ladder K` one (arm, seed) yields K rows (`train_ladder`): one long wsd run in the
unit's directory, paused at each rung's cooldown start, and each rung's cooldown in
`rung-k/` from a copy of that checkpoint (`ablations.plan.ladder`).

A finished ok unit keeps its final weights (`ablations.run.weights`) and, with
--downstream, its fine-tuned scores (`ablations.run.downstream`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ablations.config import RunConfig
from ablations.plan.resolve import ResolvedArm, with_measured_flops
from ablations.rows import Row
from ablations.run.downstream import downstream_lines, score_or_error
from ablations.run.failure import write_error_log
from ablations.run.launch import fit, launch
from ablations.run.rows import Draft
from ablations.run.weights import drop_checkpoint, keep_final_weights, with_init_from
from ablations.rundir import ERROR_LOG, arm_dir
from core.data import DataConfig, DataError, build_dataset
from core.device import oom_result
from core.errors import one_line
from core.extras import MissingExtra
from core.measure import flops_per_token, matmul_peak_flops, measure, step_flops
from core.model import PretrainingModel
from core.train import CHECKPOINT, TrainConfig, finished_training, load_checkpoint

# the steps of an (arm, seed), in order: a failure names its step (`failed_step`), and a
# re-run after a failure past "train" resumes the final checkpoint, training 0 steps
STEPS = ("train", "final evaluation", "weights", "downstream", "measurement")


class ArmTrainer:
    def __init__(self, run_dir: Path, config: RunConfig, device: torch.device, log):
        self.out, self.config, self.device, self.log = run_dir, config, device, log
        self._data: dict[str, Any] = {}
        self.step, self.ckpt = STEPS[0], run_dir / CHECKPOINT  # the step under way, the checkpoint it writes

    # -- data, shared by arms with the same DataConfig -----------------------------------------
    def data_for(self, cfg: DataConfig):
        key = cfg.to_json()
        if key not in self._data:
            t0 = time.perf_counter()
            self._data[key] = build_dataset(cfg, self.config.corpus, self.config.cache_dir)
            self.log(f"  data ready in {time.perf_counter() - t0:.1f}s: {len(self._data[key].train)} training "
                     f"examples from {self._data[key].corpus_name}")
        return self._data[key]

    def eval_data_for(self, res: ResolvedArm, data) -> tuple[Any, str]:
        """The held-out set that scores this arm: its own, or its base arm's (`plan.resolve.pair_eval_sets`)."""
        if res.eval_set == "base":
            return self.data_for(res.eval_data), "base"
        return data, "own"

    # -- one arm ---------------------------------------------------------------------------------
    def train(self, res: ResolvedArm, row: Row) -> Row:
        ckpt_dir = arm_dir(self.out, res.arm.name, res.seed)
        draft = Draft(row)
        self.guarded(draft, lambda: self._train_into(draft, res, ckpt_dir), ckpt_dir)
        if draft.row.ok:
            (ckpt_dir / ERROR_LOG).unlink(missing_ok=True)
            if not self.config.keep_checkpoints:
                drop_checkpoint(ckpt_dir)  # the final weights stay (export, finetune, init_from)
        return draft.row

    def guarded(self, draft: Draft, work: Callable[[], None], unit_dir: Path) -> None:
        """Run `work` (which fills the draft's row, naming each step in `self.step` as it
        starts); a failure becomes the row's status, one line in `error`, the step in
        `failed_step` and the traceback in the unit's error.log. A step after training never
        costs the training: the checkpoint stays, and the re-run goes on from it (`STEPS`)."""
        t0 = time.perf_counter()
        self.step, self.ckpt = STEPS[0], unit_dir / CHECKPOINT
        try:
            work()
        except (KeyboardInterrupt, DataError, MissingExtra):
            raise  # every arm would meet it: the run stops, once
        except Exception as err:  # noqa: BLE001 - a failed arm is a result; the run goes on
            oom = oom_result(err)
            if oom is not None:
                draft.update(oom)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            else:
                step = self._failed_step()
                write_error_log(unit_dir / ERROR_LOG, step, err)
                draft.update(status="error", error=one_line(err), failed_step=step)
        draft.update(wall_s_total=time.perf_counter() - t0)

    def _failed_step(self) -> str:
        """The step that failed; "train" becomes "final evaluation" when the checkpoint says
        training had ended (the trainer writes it before evaluating)."""
        if self.step == "train" and finished_training(self.ckpt):
            return "final evaluation"
        return self.step

    def _train_into(self, draft: Draft, res: ResolvedArm, ckpt_dir: Path) -> None:
        data = self.data_for(res.data)
        eval_data, eval_set = self.eval_data_for(res, data)
        draft.update(eval_set=eval_set)
        train_cfg, flops = self.with_flops(res, with_init_from(res.train, self.out, res.seed), draft.row.config)
        draft.update(flops)
        trained, model = self.fit_unit(res, data, eval_data, train_cfg, ckpt_dir)
        draft.update(trained.to_json())
        draft.update(budget_kind=trained.stopped_by or draft.row.budget_kind)
        if draft.row.ok:
            draft.update(self.keep_and_score(model or self.from_checkpoint(res, ckpt_dir), data, ckpt_dir, res))
        del model
        self.step = "measurement"
        timed = draft.row.timed_steps
        draft.update(self.measurements(res, not timed or timed < 3, draft.row.tokens_per_s))

    def with_flops(self, res: ResolvedArm, train_cfg: TrainConfig,
                   config: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        """Every arm counts its training FLOPs, measured here, in the run stage, once per
        configuration in a process (`core.measure.measured_flops_cached`), so that any run
        can be plotted against compute; a FLOP budget is counted in them, and what follows
        from them (curve examples, a ladder's warm-up) is set now (`with_measured_flops`).
        The training config, and the row fields that record them (`config`: the row's, updated)."""
        m = step_flops(res.model, train_cfg.batch_size, res.data.max_length, self.device, res.data.mask_prob,
                       train_cfg.grad_accum)
        train = with_measured_flops(res, train_cfg, m["flops_per_step"], self.config.ladder, self.config.ladder_ratio)
        return train, {"flops_per_step": train.flops_per_step, "flops_per_token_measured": m["flops_per_token"],
                       "flops_per_token_analytic": m["flops_per_token_analytic"],
                       "config": {**config, **{f"train.{k}": getattr(train, k)
                                               for k in ("flops_per_step", "curve_examples", "warmup_steps")}}}

    def fit_unit(self, res: ResolvedArm, data, eval_data, train_cfg: TrainConfig, ckpt_dir: Path,
                 until: dict | None = None) -> tuple[Row, PretrainingModel | None]:
        """Train in this process, or on torchrun's ranks (then no model: rank 0 wrote it).
        The row fields training fills, as a row of those fields alone (no arm yet)."""
        n, tracking = self.config.nproc_per_node, self._tracking(res, ckpt_dir)
        if n > 1:  # torchrun's ranks train it; this process keeps the lease and measures
            fields = launch(res.model, res.data, eval_data.cfg if eval_data is not data else None, train_cfg,
                            ckpt_dir, self.config.corpus, self.config.cache_dir, n, self.config.progress, until, tracking)
            model = None
        else:
            fields, model = fit(res.model, data, eval_data, train_cfg, ckpt_dir, self.config.progress, until, tracking)
        trained = Row.from_json(fields)
        if trained.resume is not None and trained.resume.kind == "restarted":
            self.log(f"  [yellow]{trained.resume.reason}[/yellow]")
        return trained, model

    def _tracking(self, res: ResolvedArm, ckpt_dir: Path) -> dict | None:
        """--log-to: one tracked run per (arm, seed), and per rung of a ladder (each is its own trajectory)."""
        if self.config.log_to in (None, "", "none"):
            return None
        rung = f"/{ckpt_dir.name}" if ckpt_dir.name.startswith("rung-") else ""
        return {"names": self.config.log_to, "log_dir": str(self.out), "run_name": f"{res.arm.name}/seed-{res.seed}{rung}",
                "tags": {"arm": res.arm.name, "seed": str(res.seed), "project": self.out.name}, "config": res.flat}

    @staticmethod
    def from_checkpoint(res: ResolvedArm, ckpt_dir: Path) -> PretrainingModel:
        """The final weights that torchrun's rank 0 wrote, for an arm trained on several ranks."""
        model = PretrainingModel(res.model)
        model.load_state_dict(load_checkpoint(ckpt_dir / CHECKPOINT)["model"])
        return model

    def keep_and_score(self, model: PretrainingModel, data, directory: Path, res: ResolvedArm) -> dict[str, Any]:
        """Keep the final weights (marked with the row's key) and add downstream scores if asked."""
        self.step = "weights"
        keep_final_weights(model, data.tokenizer.path, directory, {"arm": res.arm.name, "seed": res.seed,
                                                                   "key": res.key})
        fields: dict[str, Any] = {"weights_dir": str(directory.relative_to(self.out))}
        o = self.config
        if o.downstream:
            self.step = "downstream"
            self.log(f"  fine-tuning on {', '.join(o.downstream)} ({o.downstream_steps} steps, "
                     f"{o.downstream_seeds} seed(s))")
            scores = score_or_error(model, data.tokenizer.path, o.downstream, o.downstream_steps,
                                    o.downstream_seeds, o.device, arm_dir=directory, root=self.out)
            fields.update(scores)
            for line in downstream_lines(Row.from_json(scores)):
                self.log(f"  {line}")
        return fields

    def measurements(self, res: ResolvedArm, speed: bool, tokens_per_s: float | None = None) -> dict[str, Any]:
        """Memory (isolated) and saved bytes at the training shape; speed comes from the
        training steps themselves (`tokens_per_s`) unless too few were timed (then warm-up +
        timed steps). A ladder measures once and gives every rung the same figures."""
        m = measure(res.model, res.train.batch_size, res.data.max_length, self.device, speed=speed, memory=True,
                    warmup=1, steps=3, memory_limit_bytes=self.config.memory_limit_bytes, compile=self.config.compile)
        if m["status"] == "oom":
            return {"status": "oom", "error": f"measurement: {m['error']}"}
        keys = ["peak_mem_bytes", "saved_bytes", "memory_method"]
        if speed:
            keys += ["tokens_per_s", "infer_tokens_per_s", "tokens_per_s_min", "tokens_per_s_max"]
        out = {k: m.get(k) for k in keys}
        rate = m.get("tokens_per_s") if speed else tokens_per_s
        cost = flops_per_token(res.model, res.data.max_length)
        out.update(cost, utilisation=cost["flops_per_token"] * rate / matmul_peak_flops(str(self.device))
                   if rate else None)
        long_len = self.config.long_seq_len
        if long_len:
            lm = measure(res.model, 1, long_len, self.device, speed=False, memory=False)
            out.update(saved_bytes_long=lm.get("saved_bytes"), long_seq_len=long_len)
        return out


