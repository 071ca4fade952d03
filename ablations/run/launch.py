"""Training one resolved unit, in this process or on torchrun's ranks.

`fit` is what every unit runs: model, Trainer, the row's training fields. With
`--nproc-per-node N` the runner keeps the unit's lease and launches

    python -m torch.distributed.run --standalone --nproc-per-node N -m ablations.run.launch unit.json

unit.json holds the unit's configs; each rank joins the group (`core.train.distributed`),
builds the same data from the cache the runner has already filled, and trains its share
of every step; rank 0 writes the fields to result.json, which the runner folds into the
row. `--batch-size` stays the examples per optimizer step: each rank takes
batch_size / N of them, so a unit's global batch does not depend on N.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from ablations.rundir import RANK_RESULT, UNIT
from core.data import DataConfig, build_dataset
from core.device import resolved_precision
from core.files import atomic_write_text
from core.model import ModelConfig, PretrainingModel
from core.optim import describe_groups, optimizer_state_bytes
from core.train import TrainConfig, Trainer, init_from_env, teardown
from core.train.tracking import open_trackers


def fit(model_cfg: ModelConfig, data, eval_data, train_cfg: TrainConfig, ckpt_dir: Path,
        progress: bool, until: dict | None = None, tracking: dict | None = None) -> tuple[dict, PretrainingModel]:
    """Train (or resume) one unit: the row's training fields (`resume` included) and the
    model. With `until`, only that far (status "paused": a ladder's stable run). `tracking`:
    open_trackers' arguments (--log-to), for rank 0; the trackers only watch."""
    torch.manual_seed(train_cfg.seed)
    model = PretrainingModel(model_cfg)
    counts = model.parameter_counts()
    with open_trackers(**tracking) if tracking else contextlib.nullcontext() as tracker:
        trainer = Trainer(model, data, train_cfg, ckpt_dir, progress_bar=progress, eval_data=eval_data,
                          tracker=tracker)
        result = trainer.train(resume=True, until=until)
    p = result.progress
    fields = dict(params_unique=counts["unique"], params_total=counts["total"], params_embedding=counts["embedding"],
                  params_encoder_unique=counts["encoder_unique"], status=result.status, error=result.error,
                  tokens_seen=p.tokens, steps=p.step, wall_s=p.seconds, resume=result.resume,
                  train_loss=result.train_loss, train_loss_time=result.train_loss_time, evals=result.evals,
                  train_tokens_per_s=p.tokens / max(p.seconds, 1e-9), world_size=trainer.world,
                  train_flops=p.flops, stopped_by=result.stopped_by, steps_trained=len(result.step_times),
                  compile_seconds=p.compile_seconds, local_kernel=local_kernel(model, trainer.device, data.cfg.max_length),
                  attention_kernel=attention_kernel(model), attention_paths=model.attention_paths or None,
                  warm_start=result.warm_start, precision=resolved_precision(trainer.device, train_cfg.precision),
                  # the optimizer's state (its moments: core.optim.optimizer_state_bytes; None before any
                  # step) and its parameter groups with their peak rates (Muon's split, stated per row)
                  optimizer_state_bytes=optimizer_state_bytes(trainer.optimizer) or None,
                  optimizer_groups=describe_groups(trainer.optimizer, train_cfg.lr),
                  **{k: v for k, v in result.final_eval.items() if k.startswith("eval_")})
    fields.update(result.speed(warmup=2))
    return fields, model


def local_kernel(model: PretrainingModel, device, length: int) -> str | None:
    """Which kernel the local (sliding-window) layers ran at the training length (core.model.local),
    or None without any."""
    if not model.cfg.has_local_layers and model.cfg.attention != "local":
        return None
    from core.model.local import kernel_for

    return kernel_for(model.local_kernel, device, model.cfg.attention_dropout, length, model.cfg.local_window // 2)


def attention_kernel(model: PretrainingModel) -> str | None:
    """The kernels the sparse kind ran, by calls over every layer and forward of this session,
    most first ("gather", "flex", "full" for BigBird; "lsh"; the window's "banded", "flex",
    "dense"): what ran, never what was asked for, so a flex path that fell back shows. None
    for a full-attention model, or when nothing was trained in this session."""
    if not model.encoder.sparse:
        return None
    ran = sorted(model.kernels_ran().items(), key=lambda kv: -kv[1])
    return "+".join(k for k, _ in ran) or None


def launch(model_cfg: ModelConfig, data_cfg: DataConfig, eval_cfg: DataConfig | None, train_cfg: TrainConfig,
           ckpt_dir: Path, corpus: str | None, cache_dir: str | None, nproc: int, progress: bool = True,
           until: dict | None = None, tracking: dict | None = None) -> dict:
    """Run `fit` on `nproc` torchrun ranks; the fields rank 0 wrote. A failed launch raises
    with the ranks' last error lines (the runner records the unit as "error")."""
    if train_cfg.batch_size % nproc:
        raise ValueError(f"--batch-size {train_cfg.batch_size} is not divisible by --nproc-per-node {nproc}: "
                         "every rank takes an equal share of each step's examples")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    unit = {"model": model_cfg.to_json(), "data": data_cfg.to_json(), "eval": eval_cfg.to_json() if eval_cfg else None,
            "train": train_cfg.replace(batch_size=train_cfg.batch_size // nproc).to_json(),
            "ckpt_dir": str(ckpt_dir), "corpus": corpus, "cache_dir": cache_dir, "progress": progress,
            "until": until, "tracking": tracking}
    atomic_write_text(ckpt_dir / UNIT, json.dumps(unit, default=str))
    (ckpt_dir / RANK_RESULT).unlink(missing_ok=True)
    root = str(Path(__file__).resolve().parents[2])  # the project root, above ablations/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "ablations.run.launch", str(ckpt_dir / UNIT)]
    for attempt in (1, 2):
        done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        (ckpt_dir / f"torchrun-{attempt}.log").write_text(done.stderr)
        if (ckpt_dir / RANK_RESULT).is_file():  # rank 0 finished the unit (a crash at teardown loses nothing)
            return json.loads((ckpt_dir / RANK_RESULT).read_text())
        # a rank that dies before the unit ends (seen once: SIGABRT at start-up on a loaded
        # machine) is retried once; the checkpoint makes the retry resume, not restart
    tail = " / ".join(line for line in done.stderr.strip().splitlines()[-4:])
    raise RuntimeError(f"torchrun with {nproc} ranks exited with {done.returncode} twice (logs: "
                       f"{ckpt_dir}/torchrun-*.log): {tail[-600:]}")


def main(unit_path: str) -> None:
    unit: dict[str, Any] = json.loads(Path(unit_path).read_text())
    train_cfg = TrainConfig.from_json(unit["train"])
    world, _ = init_from_env(train_cfg.device)
    try:
        data = build_dataset(DataConfig.from_json(unit["data"]), unit["corpus"], unit["cache_dir"])
        eval_data = build_dataset(DataConfig.from_json(unit["eval"]), unit["corpus"], unit["cache_dir"]) \
            if unit["eval"] else data
        ckpt_dir = Path(unit["ckpt_dir"])
        fields, _ = fit(ModelConfig.from_json(unit["model"]), data, eval_data, train_cfg, ckpt_dir,
                     progress=unit.get("progress", True) and world.rank == 0, until=unit.get("until"),
                     tracking=unit.get("tracking") if world.rank == 0 else None)
        if world.rank == 0:
            atomic_write_text(ckpt_dir / RANK_RESULT, json.dumps(fields, default=str))
    finally:
        teardown()


if __name__ == "__main__":
    main(sys.argv[1])
