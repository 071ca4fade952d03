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
import re
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablations.results import append_row, read_rows, write_text
from ablations.specs import AblationSpec, Arm
from core.config import ModelConfig
from core.data import DataConfig, build_dataset
from core.data.dataset import corpus_source
from core.device import device_name, is_oom, pick_device
from core.measure import flops_per_token, matmul_peak_flops, measure
from core.model import PretrainingModel
from core.training import TrainConfig, Trainer
from variants import SIZES, get_config, get_variant

RESULTS, BENCH = "results.jsonl", "bench.jsonl"
# DataConfig fields that only shape training examples and masks; arms that differ from the
# base in nothing else are evaluated on the base arm's held-out examples and masks
TRAINING_ONLY = ("packing", "sentence_task", "short_seq_prob", "masking", "dupe_factor", "mask_unit", "max_ngram",
                 "mask_prob", "replace_prob", "random_prob", "max_predictions")


@dataclass
class RunOptions:
    corpus: str | None = None
    size: str | None = None
    steps: int = 0
    tokens: int = 0
    time_budget: float = 0.0        # seconds for all trained arms together, split equally
    seq_len: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    quick: bool = False
    vocab_size: int | None = None
    lr: float | None = None
    long_seq_len: int | None = None  # extra saved-bytes figure at a long length; 0 disables
    keep_checkpoints: bool = False
    cache_dir: str | None = None
    progress: bool = True
    memory_limit_bytes: int | None = None


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '600' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"cannot read duration {text!r}; use e.g. 90s, 10m or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


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


def effective_options(spec: AblationSpec, opts: RunOptions) -> dict[str, Any]:
    d = dict(spec.defaults)
    quick = opts.quick
    size = opts.size or d.get("size") or ("tiny" if quick else "mini")
    if size not in SIZES:
        from core.registry import unknown_name_error

        raise unknown_name_error("size", size, SIZES)
    seq_len = opts.seq_len or (64 if quick else d.get("seq_len", 128))
    batch = opts.batch_size or (4 if quick else d.get("batch_size", 16))
    budget: dict[str, Any] = {}
    if opts.steps:
        budget["max_steps"] = opts.steps
    if opts.tokens:
        budget["max_tokens"] = opts.tokens
    if opts.time_budget:
        budget["max_seconds"] = opts.time_budget  # divided among trained arms by the runner
    if not budget:
        budget = {"max_steps": 3} if quick else {"max_tokens": d.get("tokens", 60_000)}
    return {"size": size, "seq_len": seq_len, "batch_size": batch, "budget": budget,
            "vocab_size": opts.vocab_size or (500 if quick else d.get("vocab_size", 8000)),
            "lr": opts.lr or d.get("lr", 1e-3),
            "long_seq_len": opts.long_seq_len if opts.long_seq_len is not None else (128 if quick else 2048)}


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
        eff = self._eff
        src = corpus_source(self.opts.corpus)
        results_path = self.out / RESULTS
        previous = [r for r in read_rows(results_path) if r.get("status") in ("ok", "oom")]
        finished = {r["key"]: r for r in previous}
        finished_arms = {(r["key"], r["arm"]) for r in previous}
        resolved = self._resolve_all(eff, src.fingerprint)
        self._base_data_cfg = resolved[0].data if isinstance(resolved[0], ResolvedArm) else None
        keys = {r.key for r in resolved if isinstance(r, ResolvedArm)}
        first = next((r for r in resolved if isinstance(r, ResolvedArm)), None)
        budget = {k: getattr(first.train, k) for k in ("max_steps", "max_tokens", "max_seconds")
                  if first is not None and getattr(first.train, k)}
        write_text(self.out / "spec.json", json.dumps({"ablation": self.spec.name, "options": eff,
                                                       "budget_per_arm": budget, "corpus": src.name},
                                                      indent=1, default=str))
        self.log(f"[bold]{self.spec.name}[/bold]: {len(self.spec.arms)} arms ({len(keys)} distinct), size "
                 f"{eff['size']}, seq {eff['seq_len']}, batch {eff['batch_size']}, budget {budget} per arm, "
                 f"corpus: {src.name}, device: {device_name(self.device)}; results in {self.out}")
        done_here: dict[str, dict] = {}
        for i, (arm, res) in enumerate(zip(self.spec.arms, resolved), 1):
            head = f"[{i}/{len(self.spec.arms)}] {arm.name}"
            if isinstance(res, Exception):
                row = self._row_base(arm, None, src.name)
                row.update(status="error", error=f"invalid configuration: {res}")
                append_row(results_path, row)
                self.log(f"{head}: [red]error[/red] {res}")
                continue
            if (res.key, arm.name) in finished_arms:
                self.log(f"{head}: finished earlier ({finished[res.key]['status']}), skipped")
                continue
            twin = done_here.get(res.key) or finished.get(res.key)
            if twin is not None:
                row = {**twin, "arm": arm.name, "description": arm.description, "component": arm.component,
                       "compare_to": self._ref(arm), "overrides": dict(arm.overrides), "same_as": twin["arm"]}
                append_row(results_path, row)
                self.log(f"{head}: same configuration as {twin['arm']}; its result is recorded for this arm too")
                continue
            self.log(f"{head}: {arm.description or ''}")
            row = self.run_arm(res, src.name)
            append_row(results_path, row)
            done_here[res.key] = row
            colour = {"ok": "green", "oom": "yellow"}.get(row["status"], "red")
            summary = f"eval MLM loss {row['eval_mlm_loss']:.3f}, " if row.get("eval_mlm_loss") is not None else ""
            self.log(f"  [{colour}]{row['status']}[/{colour}] {summary}{row.get('wall_s', 0):.0f}s"
                     + (f" — {row['error']}" if row.get("error") else ""))
        from ablations.report import render_report

        render_report(self.out, self.console)
        return self.out

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
        from ablations.report import render_report

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
        arm_dir = self.out / "arms" / re.sub(r"[^A-Za-z0-9_.+=-]+", "_", res.arm.name)
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
            trainer = Trainer(model, data, res.train, arm_dir, progress_bar=self.opts.progress, eval_data=eval_data)
            result = trainer.train(resume=True)
            row.update(status=result.status, error=result.error, tokens_seen=result.progress.tokens,
                       steps=result.progress.step, wall_s=result.progress.seconds,
                       train_loss=result.train_loss, train_loss_time=result.train_loss_time, evals=result.evals,
                       train_tokens_per_s=result.progress.tokens / max(result.progress.seconds, 1e-9),
                       **{k: v for k, v in result.final_eval.items() if k.startswith("eval_")})
            row.update(result.speed(warmup=2))
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
            shutil.rmtree(arm_dir, ignore_errors=True)
        return row

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


# -- bench: memory and speed without training ------------------------------------------------------
def run_bench(variants: tuple[str, ...] | list[str], seq_lens, mode: str, size: str, tokens_per_batch: int,
              opts: RunOptions, out: Path, console, ablation: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / BENCH
    device = pick_device(opts.device)
    done = {(r["variant"], r["seq_len"], r["batch_size"], r.get("mode"), r.get("size"), r.get("device")): r
            for r in read_rows(path) if r.get("status") in ("ok", "oom")}
    for v in variants:
        get_variant(v)  # fail early, with the valid names
    for v in variants:
        oom_at = None
        for T in seq_lens:
            B = max(1, tokens_per_batch // T)
            key = (v, T, B, mode, size, device_name(device))
            if key in done:
                console.print(f"{v} @ {T}: measured earlier ({done[key]['status']}), skipped")
                continue
            row = {"ablation": ablation, "variant": v, "size": size, "seq_len": T, "batch_size": B, "mode": mode,
                   "device": device_name(device), "status": "ok", "error": None, "tokens_per_s": None,
                   "infer_tokens_per_s": None, "peak_mem_bytes": None, "saved_bytes": None}
            if oom_at is not None:
                row.update(status="oom", error=f"skipped: out of memory already at {oom_at} tokens")
            else:
                try:
                    cfg = get_config(v, size, vocab_size=opts.vocab_size or 8000, max_position_embeddings=max(512, T))
                    m = measure(cfg, B, T, device, speed=mode in ("speed", "both"), memory=mode in ("memory", "both"),
                                warmup=1, steps=1 if opts.quick else 3, memory_limit_bytes=opts.memory_limit_bytes)
                    row.update({k: m.get(k) for k in ("status", "error", "tokens_per_s", "infer_tokens_per_s",
                                                      "peak_mem_bytes", "saved_bytes", "step_s_median", "utilisation",
                                                      "flops_label", "memory_method", "params_unique")})
                except Exception as err:  # noqa: BLE001
                    if is_oom(err):
                        row.update(status="oom", error=str(err).splitlines()[0][:300])
                    else:
                        row.update(status="error", error=f"{type(err).__name__}: {err}"[:600])
                if row["status"] == "oom":
                    oom_at = T
            append_row(path, row)
            tps = f"{row['tokens_per_s']:,.0f} tok/s" if row.get("tokens_per_s") else ""
            mem = f"{row['peak_mem_bytes'] / 2**20:,.0f} MiB peak" if row.get("peak_mem_bytes") else ""
            console.print(f"{v} @ {T} x {B}: {row['status']} {tps} {mem}")
    return out
