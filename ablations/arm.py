"""Training one resolved arm into one results row: data (shared between arms), model,
trainer, then the measurements that stand beside the losses.

Failures are results: OOM is recorded as "oom", a NaN stop as "nan", any other exception
in the arm as "error" with its message, and the run goes on. A data problem (corpus,
tokenizer) is not an arm's failure: every arm would meet it, so it stops the run at once.
"""
from __future__ import annotations

import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ablations.launch import fit, launch
from ablations.options import RunOptions
from ablations.resolve import TRAINING_ONLY, ResolvedArm
from ablations.results import arm_dir
from core.data import DataConfig, DataError, build_dataset
from core.device import is_oom
from core.measure import flops_per_token, matmul_peak_flops, measure


class ArmTrainer:
    def __init__(self, run_dir: Path, opts: RunOptions, eff: dict[str, Any], device: torch.device, log):
        self.out, self.opts, self.eff, self.device, self.log = run_dir, opts, eff, device, log
        self.base_data: dict[int, DataConfig] = {}  # seed -> the base arm's data config
        self._data: dict[str, Any] = {}

    # -- data, shared by arms with the same DataConfig -----------------------------------------
    def data_for(self, cfg: DataConfig):
        key = cfg.to_json()
        if key not in self._data:
            t0 = time.perf_counter()
            self._data[key] = build_dataset(cfg, self.opts.corpus, self.opts.cache_dir)
            self.log(f"  data ready in {time.perf_counter() - t0:.1f}s: {len(self._data[key].train)} training "
                     f"examples from {self._data[key].corpus_name}")
        return self._data[key]

    def eval_data_for(self, res: ResolvedArm, data) -> tuple[Any, str]:
        """Arms that differ from the base only in training-side data choices are scored on
        the base arm's held-out examples and masks (same tokenizer and documents)."""
        base = self.base_data.get(res.seed)
        if base is not None and base.replace(**{k: getattr(res.data, k) for k in TRAINING_ONLY}) == res.data:
            return self.data_for(base), "base"
        return data, "own"

    # -- one arm --------------------------------------------------------------------------------
    def train(self, res: ResolvedArm, row: dict[str, Any]) -> dict[str, Any]:
        ckpt_dir = arm_dir(self.out, res.arm.name, res.seed)
        t0 = time.perf_counter()
        try:
            self._train_into(row, res, ckpt_dir)
        except (KeyboardInterrupt, DataError):
            raise
        except Exception as err:  # noqa: BLE001 - a failed arm is a result; the run goes on
            if is_oom(err):
                row.update(status="oom", error=str(err).splitlines()[0][:300])
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            else:
                tb = traceback.format_exc(limit=3).strip().splitlines()
                row.update(status="error", error=f"{type(err).__name__}: {err} | {' / '.join(tb[-3:])}"[:1200])
        row["wall_s_total"] = time.perf_counter() - t0
        if row["status"] == "ok" and not self.opts.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        return row

    def _train_into(self, row: dict, res: ResolvedArm, ckpt_dir: Path) -> None:
        data = self.data_for(res.data)
        eval_data, row["eval_set"] = self.eval_data_for(res, data)
        n = self.opts.nproc_per_node
        if n > 1:  # torchrun's ranks train it; this process keeps the lease and measures
            fields = launch(res.model, res.data, eval_data.cfg if eval_data is not data else None, res.train,
                            ckpt_dir, self.opts.corpus, self.opts.cache_dir, n, self.opts.progress)
        else:
            fields = fit(res.model, data, eval_data, res.train, ckpt_dir, self.opts.progress)
        if fields["resume"].get("kind") == "restarted":
            self.log(f"  [yellow]{fields['resume']['reason']}[/yellow]")
        row.update(fields)
        self._measure_into(row, res, speed=not row.get("timed_steps") or row["timed_steps"] < 3)

    def _measure_into(self, row: dict, res: ResolvedArm, speed: bool) -> None:
        """Memory (isolated) and saved bytes at the training shape; speed comes from the
        training steps themselves unless too few were timed (then warm-up + timed steps)."""
        m = measure(res.model, res.train.batch_size, res.data.max_length, self.device, speed=speed, memory=True,
                    warmup=1, steps=3, memory_limit_bytes=self.opts.memory_limit_bytes)
        if m["status"] == "oom":
            row.update(status="oom", error=f"measurement: {m['error']}")
            return
        keys = ["peak_mem_bytes", "saved_bytes", "memory_method"]
        if speed:
            keys += ["tokens_per_s", "infer_tokens_per_s", "tokens_per_s_min", "tokens_per_s_max"]
        for k in keys:
            row[k] = m.get(k)
        cost = flops_per_token(res.model, res.data.max_length)
        row.update(cost, utilisation=cost["flops_per_token"] * row["tokens_per_s"] / matmul_peak_flops(str(self.device))
                   if row.get("tokens_per_s") else None)
        long_len = self.eff["long_seq_len"]
        if long_len:
            lm = measure(res.model, 1, long_len, self.device, speed=False, memory=False)
            row.update(saved_bytes_long=lm.get("saved_bytes"), long_seq_len=long_len)


