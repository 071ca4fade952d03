"""The ablation runner: every arm on the same data, seed and budget; one row per arm.

- An arm resolves to (ModelConfig, DataConfig, TrainConfig) from the base variant, the
  ablation's base overrides, the arm's overrides and the run options, in that order.
- Finished arms (status ok or oom) whose configuration is unchanged are skipped on a
  re-run; an arm that errored is retried. Each arm checkpoints, so an interrupted arm
  resumes where it stopped. Arms whose resolved configuration is identical to another's
  are trained once and recorded under both names.
- Failures are results: OOM is recorded as "oom", any other exception as "error" with
  its message, and the run goes on with the next arm.
"""
from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablations.bench import run_bench
from ablations.downstream import downstream_lines
from ablations.export import drop_checkpoint, finish_arm, with_init_from
from ablations.options import RunOptions, effective_options
from ablations.report import render_report
from ablations.results import RESULTS, SPEC, append_row, arm_dir, read_rows, write_text
from ablations.specs import AblationSpec, Arm
from core.data import DataConfig, build_dataset, corpus_source
from core.device import device_name, is_oom, pick_device
from core.measure import flops_per_token, matmul_peak_flops, measure
from core.model import ModelConfig, PretrainingModel
from core.train import TrainConfig, Trainer
from variants import SIZES, get_config, get_variant

# DataConfig fields that only shape training examples and masks; arms that differ from the
# base in nothing else are evaluated on the base arm's held-out examples and masks
TRAINING_ONLY = ("packing", "sentence_task", "short_seq_prob", "masking", "dupe_factor", "mask_unit", "max_ngram",
                 "mask_prob", "replace_prob", "random_prob", "max_predictions")


@dataclass
class ResolvedArm:
    arm: Arm
    variant: str
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    flat: dict[str, Any]
    key: str


def _split(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    for k, v in overrides.items():
        section, _, name = k.partition(".")
        out[section][name] = v
    return out


def resolve_arm(spec: AblationSpec, arm: Arm, eff: dict[str, Any], opts: RunOptions,
                corpus_fp: str, n_trained: int = 1) -> ResolvedArm:
    variant = get_variant(spec.base)
    over = _split({**spec.base_overrides, **arm.overrides})
    seq_len = eff["seq_len"]
    layers = SIZES[eff["size"]][0]
    model_over = {k: (layers if (k == "num_groups" and v == "L") else v) for k, v in over["model"].items()}
    model_over.setdefault("vocab_size", eff["vocab_size"])
    model_over.setdefault("max_position_embeddings", max(512, seq_len))
    model = get_config(spec.base, eff["size"], **model_over)
    data_fields = {**variant.data, "vocab_size": model.vocab_size, "max_length": seq_len, "seed": 12345 + opts.seed}
    if opts.quick:
        data_fields.update(dupe_factor=2, max_eval_examples=64)
    data_fields.update(over["data"])
    data = DataConfig(**data_fields)
    if data.sentence_task != "none" and not model.sentence_head:
        raise ValueError(f"arm {arm.name!r}: data.sentence_task={data.sentence_task!r} needs a sentence head; "
                         "set model.sentence_head=True or data.sentence_task='none'")
    budget = dict(eff["budget"])
    if "max_seconds" in budget:
        budget["max_seconds"] = budget["max_seconds"] / max(1, n_trained)
    train_fields = {"batch_size": eff["batch_size"], "lr": eff["lr"], "device": opts.device, "seed": opts.seed,
                    "checkpoint_every": 50, "log_every": 1, **budget, **over["train"]}
    train = TrainConfig(**train_fields)
    flat = {**{f"model.{k}": v for k, v in model.to_dict().items()},
            **{f"data.{k}": v for k, v in data.to_dict().items()},
            **{f"train.{k}": v for k, v in train.to_dict().items()}}
    key_src = {k: v for k, v in flat.items() if k not in ("train.checkpoint_every", "train.log_every")}
    key = hashlib.sha1(json.dumps([key_src, corpus_fp], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return ResolvedArm(arm, spec.base, model, data, train, flat, key)


def default_out(spec: AblationSpec) -> Path:
    return Path("runs") / spec.name


class Runner:
    def __init__(self, spec: AblationSpec, opts: RunOptions, console=None):
        from rich.console import Console

        self.spec, self.opts = spec, opts
        self.console = console or Console()
        self.out = Path(opts.out) if opts.out else default_out(spec)
        self.device = pick_device(opts.device)
        self._data: dict[str, Any] = {}
        self._base_data_cfg: DataConfig | None = None
        self._eff = effective_options(spec, opts)  # size, lengths, budget: resolved once

    def log(self, msg: str) -> None:
        self.console.print(msg)

    # -- data, shared by arms with the same DataConfig -----------------------------------------
    def data_for(self, cfg: DataConfig):
        key = cfg.to_json()
        if key not in self._data:
            t0 = time.perf_counter()
            self._data[key] = build_dataset(cfg, self.opts.corpus, self.opts.cache_dir)
            self.log(f"  data ready in {time.perf_counter() - t0:.1f}s: {len(self._data[key].train)} training "
                     f"examples from {self._data[key].corpus_name}")
        return self._data[key]

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> Path:
        if self.spec.kind == "bench":
            return self._run_bench()
        self.out.mkdir(parents=True, exist_ok=True)
        src = corpus_source(self.opts.corpus)
        resolved = self._resolve_all(self._eff, src.fingerprint)
        first = next((r for r in resolved if isinstance(r, ResolvedArm)), None)
        self._base_data_cfg = first.data if first is resolved[0] else None
        self._write_spec(first, src.name, len({r.key for r in resolved if isinstance(r, ResolvedArm)}))
        previous = [r for r in read_rows(self.out / RESULTS) if r.get("status") in ("ok", "oom")]
        self._finished = {r["key"]: r for r in previous}
        self._finished_arms = {(r["key"], r["arm"]) for r in previous}
        self._done_here: dict[str, dict] = {}
        for i, (arm, res) in enumerate(zip(self.spec.arms, resolved), 1):
            self._run_one(f"[{i}/{len(self.spec.arms)}] {arm.name}", arm, res, src.name)
        render_report(self.out, self.console)
        return self.out

    def _write_spec(self, first: ResolvedArm | None, corpus: str, distinct: int) -> None:
        eff = self._eff
        budget = {k: getattr(first.train, k) for k in ("max_steps", "max_tokens", "max_seconds")
                  if first is not None and getattr(first.train, k)}
        write_text(self.out / SPEC, json.dumps({"ablation": self.spec.name, "options": eff,
                                                "budget_per_arm": budget, "corpus": corpus},
                                               indent=1, default=str))
        self.log(f"[bold]{self.spec.name}[/bold]: {len(self.spec.arms)} arms ({distinct} distinct), size "
                 f"{eff['size']}, seq {eff['seq_len']}, batch {eff['batch_size']}, budget {budget} per arm, "
                 f"corpus: {corpus}, device: {device_name(self.device)}; results in {self.out}")

    def _run_one(self, head: str, arm: Arm, res: ResolvedArm | Exception, corpus: str) -> None:
        """Train one arm, or record why it was not trained (invalid, finished, a twin)."""
        results_path = self.out / RESULTS
        if isinstance(res, Exception):
            row = self._row_base(arm, None, corpus)
            row.update(status="error", error=f"invalid configuration: {res}")
            append_row(results_path, row)
            self.log(f"{head}: [red]error[/red] {res}")
            return
        if (res.key, arm.name) in self._finished_arms:
            self.log(f"{head}: finished earlier ({self._finished[res.key]['status']}), skipped")
            return
        twin = self._done_here.get(res.key) or self._finished.get(res.key)
        if twin is not None:
            row = {**twin, "arm": arm.name, "description": arm.description, "component": arm.component,
                   "compare_to": self._ref(arm), "overrides": dict(arm.overrides), "same_as": twin["arm"]}
            append_row(results_path, row)
            self.log(f"{head}: same configuration as {twin['arm']}; its result is recorded for this arm too")
            return
        self.log(f"{head}: {arm.description or ''}")
        row = self.run_arm(res, corpus)
        append_row(results_path, row)
        self._done_here[res.key] = row
        colour = {"ok": "green", "oom": "yellow"}.get(row["status"], "red")
        summary = f"eval MLM loss {row['eval_mlm_loss']:.3f}, " if row.get("eval_mlm_loss") is not None else ""
        self.log(f"  [{colour}]{row['status']}[/{colour}] {summary}{row.get('wall_s', 0):.0f}s"
                 + (f" — {row['error']}" if row.get("error") else ""))

    def _resolve_all(self, eff: dict[str, Any], corpus_fp: str) -> list[ResolvedArm | Exception]:
        """Resolve every arm; an invalid one becomes its error (recorded, not raised). A time
        budget is split equally among the distinct configurations that will train."""
        def resolve(n_trained: int) -> list[ResolvedArm | Exception]:
            out: list[ResolvedArm | Exception] = []
            for arm in self.spec.arms:
                try:
                    out.append(resolve_arm(self.spec, arm, eff, self.opts, corpus_fp, n_trained))
                except (ValueError, TypeError) as err:
                    out.append(err)
            return out

        resolved = resolve(1)
        if "max_seconds" in eff["budget"]:
            resolved = resolve(max(1, len({r.key for r in resolved if isinstance(r, ResolvedArm)})))
        return resolved

    def _run_bench(self) -> Path:
        eff = self._eff
        seq_lens = self.spec.bench_seq_lens[:2] if self.opts.quick else self.spec.bench_seq_lens
        run_bench(self.spec.bench_variants, seq_lens, "both", eff["size"],
                  512 if self.opts.quick else self.spec.defaults.get("tokens_per_batch", 8192),
                  self.opts, self.out, self.console, ablation=self.spec.name)
        render_report(self.out, self.console)
        return self.out

    def _ref(self, arm: Arm) -> str | None:
        ref = self.spec.reference_of(arm)
        return ref.name if ref else None

    def _row_base(self, arm: Arm, res: ResolvedArm | None, corpus: str) -> dict[str, Any]:
        return {
            "ablation": self.spec.name, "arm": arm.name, "description": arm.description,
            "component": arm.component, "compare_to": self._ref(arm), "variant": self.spec.base,
            "overrides": dict(arm.overrides), "config": res.flat if res else {}, "key": res.key if res else None,
            "status": "ok", "error": None, "corpus": corpus, "device": device_name(self.device),
            "seed": self.opts.seed, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "params_unique": None, "params_total": None, "tokens_seen": 0, "wall_s": 0.0,
            "train_loss": [], "train_loss_time": [], "evals": [],
            "eval_mlm_loss": None, "eval_mlm_acc": None, "eval_sentence_acc": None,
            "eval_nsp_acc": None, "eval_sop_acc": None,
            "tokens_per_s": None, "infer_tokens_per_s": None, "train_tokens_per_s": None,
            "peak_mem_bytes": None, "saved_bytes": None, "saved_bytes_long": None, "long_seq_len": None,
            "flops_per_token": None, "utilisation": None, "flops_label": None,
        }

    def run_arm(self, res: ResolvedArm, corpus: str) -> dict[str, Any]:
        row = self._row_base(res.arm, res, corpus)
        ckpt_dir = arm_dir(self.out, res.arm.name)
        t0 = time.perf_counter()
        try:
            data = self.data_for(res.data)
            eval_data, row["eval_set"] = data, "own"
            base = self._base_data_cfg
            if base is not None and base.replace(**{k: getattr(res.data, k) for k in TRAINING_ONLY}) == res.data:
                # the same tokenizer and held-out documents: score on the base arm's examples and masks
                eval_data, row["eval_set"] = self.data_for(base), "base"
            torch.manual_seed(res.train.seed)
            model = PretrainingModel(res.model)
            counts = model.parameter_counts()
            row.update(params_unique=counts["unique"], params_total=counts["total"],
                       params_embedding=counts["embedding"], params_encoder_unique=counts["encoder_unique"])
            trainer = Trainer(model, data, with_init_from(res.train), ckpt_dir, progress_bar=self.opts.progress,
                              eval_data=eval_data)
            result = trainer.train(resume=True)
            row.update(status=result.status, error=result.error, tokens_seen=result.progress.tokens,
                       steps=result.progress.step, wall_s=result.progress.seconds,
                       train_loss=result.train_loss, train_loss_time=result.train_loss_time, evals=result.evals,
                       train_tokens_per_s=result.progress.tokens / max(result.progress.seconds, 1e-9),
                       **{k: v for k, v in result.final_eval.items() if k.startswith("eval_")})
            row.update(result.speed(warmup=2), warm_start=result.warm_start)
            if result.status == "ok":
                row.update(self._finish_arm(model, data, ckpt_dir, res))
            del trainer, model
            self._measure_into(row, res, speed=not row.get("timed_steps") or row["timed_steps"] < 3)
        except KeyboardInterrupt:
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
            drop_checkpoint(ckpt_dir)
        return row

    def _finish_arm(self, model: PretrainingModel, data, ckpt_dir: Path, res: ResolvedArm) -> dict[str, Any]:
        """Keep the final weights (ablations.export) and add downstream scores if asked."""
        o = self.opts
        if o.downstream:
            self.log(f"  fine-tuning on {', '.join(o.downstream)} ({o.downstream_steps} steps, "
                     f"{o.downstream_seeds} seed(s))")
        fields = finish_arm(model, data.tokenizer.path, ckpt_dir, {"ablation": self.spec.name, "arm": res.arm.name},
                            o.downstream, o.downstream_steps, o.downstream_seeds, o.device)
        for line in downstream_lines(fields):
            self.log(f"  {line}")
        return fields

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
        long_len = self._eff["long_seq_len"]
        if long_len:
            lm = measure(res.model, 1, long_len, self.device, speed=False, memory=False)
            row.update(saved_bytes_long=lm.get("saved_bytes"), long_seq_len=long_len)


def run_ablation(spec: AblationSpec, opts: RunOptions, console=None) -> Path:
    return Runner(spec, opts, console).run()
