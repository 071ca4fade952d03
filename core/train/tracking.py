"""Experiment tracking while a run goes: TensorBoard, Weights & Biases, MLflow.

Chosen as HF's `report_to` is: a comma-separated list (`tensorboard,wandb`), `none`, or
`all` (every backend that is installed). The backends are optional (`pip install -e
".[track]"`); naming one that is not installed is a one-line error naming the extra.

A tracker only watches. The trainer hands it scalars; nothing it does, or fails to do,
reaches the run: `results.jsonl` and the checkpoints stay the record. A backend that
fails while logging is dropped with one warning, and training goes on.

Everything lands under the run directory the caller gives, one run per (arm, seed),
named `ARM/seed-K`:
- TensorBoard: `LOG_DIR/tb/ARM/seed-K/`, so `tensorboard --logdir LOG_DIR/tb` overlays
  arms and seeds on the same tags (`train/mlm_loss`, `eval/mlm_loss`, ...);
- W&B: offline unless WANDB_MODE says otherwise, files in `LOG_DIR/wandb/`, one W&B run
  per (arm, seed), grouped by arm (`wandb sync LOG_DIR/wandb/offline-run-*` uploads them);
- MLflow: a file store at `LOG_DIR/mlruns` (`mlflow ui --backend-store-uri LOG_DIR/mlruns`),
  experiment named for the run directory, one MLflow run per (arm, seed); MLflow 3 wants
  MLFLOW_ALLOW_FILE_STORE=true for it, which is set unless the user set it.

The step of every scalar is the x-axis of the budget (`x_axis`): optimizer steps, or
tokens or FLOPs for budgets in those, so that arms of a token or FLOP budget overlay at
equal cost; `progress/step`, `progress/tokens`, `progress/flops` are logged besides.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from core import extras

BACKENDS = ("tensorboard", "wandb", "mlflow")  # each is also its module's name (core.extras.OPTIONAL)


class TrackingError(ValueError):
    """A tracking choice that cannot be honoured; the message names the fix."""


class Tracker(Protocol):
    def log(self, scalars: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def installed(name: str) -> bool:
    return extras.installed(name)


def parse_log_to(text: str | None) -> tuple[str, ...]:
    """'tensorboard,wandb' -> the backends; '' or 'none' -> none; 'all' -> those installed."""
    names = [n.strip().lower() for n in (text or "").split(",") if n.strip()]
    if names in ([], ["none"]):
        return ()
    if names == ["all"]:
        return tuple(n for n in BACKENDS if installed(n))
    for n in names:
        if n not in BACKENDS:
            raise TrackingError(f"--log-to {text!r}: unknown tracker {n!r}; choose from {', '.join(BACKENDS)}, "
                                "'all' or 'none' (comma-separated)")
    missing = [n for n in names if not installed(n)]
    if missing:
        raise TrackingError(str(extras.missing_extra(missing[0], f"--log-to {missing[0]}")))
    return tuple(dict.fromkeys(names))


class TensorBoardTracker:
    def __init__(self, log_dir: Path, run_name: str, config: Mapping | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir / "tb" / run_name))
        if config:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=1, sort_keys=True, default=str)
                                 + "\n```")

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, log_dir: Path, run_name: str, tags: Mapping[str, str], config: Mapping | None):
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")  # never upload unless the user asked to
        self.run = wandb.init(project=tags.get("project") or log_dir.name, name=run_name, group=tags.get("arm"),
                              dir=str(log_dir), config=dict(config or {}), tags=[f"{k}={v}" for k, v in tags.items()],
                              reinit="create_new" if _wandb_new_reinit(wandb) else True)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self) -> None:
        self.run.finish()


def _wandb_new_reinit(wandb) -> bool:
    major, minor = (int(x) for x in wandb.__version__.split(".")[:2])
    return (major, minor) >= (0, 19)


class MlflowTracker:
    def __init__(self, log_dir: Path, run_name: str, tags: Mapping[str, str], config: Mapping | None):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        # MLflow 3 keeps the file store in maintenance mode behind this switch; it needs no
        # database and lives in the run directory (`mlflow migrate-filestore` converts it)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=(log_dir / "mlruns").resolve().as_uri())
        name = tags.get("project") or log_dir.name
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment, run_name=run_name,
                                             tags={k: str(v) for k, v in tags.items()}).info.run_id
        params = [Param(k, str(v)[:500]) for k, v in sorted((config or {}).items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in scalars.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackers:
    """Every chosen backend behind one `log`; a backend that fails is dropped, once, loudly."""

    def __init__(self, backends: Mapping[str, Tracker]):
        self.backends = dict(backends)

    def log(self, scalars: Mapping[str, float | None], step: int) -> None:
        clean = {k: float(v) for k, v in scalars.items() if v is not None}
        for name, backend in list(self.backends.items()):
            try:
                backend.log(clean, int(step))
            except Exception as err:  # noqa: BLE001 - a tracker must never stop a run
                del self.backends[name]
                warnings.warn(f"tracker {name} failed ({type(err).__name__}: {str(err)[:160]}); it is dropped for "
                              "the rest of this run, which goes on (results.jsonl is the record)", stacklevel=2)

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends = {}

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_trackers(names: str | tuple[str, ...] | list[str], log_dir: str | os.PathLike, run_name: str,
                  tags: Mapping[str, str] | None = None, config: Mapping | None = None) -> Trackers:
    """The chosen backends for one (arm, seed) run: `run_name` like 'bert/seed-0', `tags`
    like {'arm': 'bert', 'seed': '0'} ('project' names the W&B project / MLflow
    experiment; default: the run directory's name), `config` a flat dict of the run's
    settings (W&B config, MLflow params, a TensorBoard text)."""
    chosen = parse_log_to(names) if isinstance(names, str) else parse_log_to(",".join(names) or "none")
    log_dir, tags = Path(log_dir), dict(tags or {})
    makers = {"tensorboard": lambda: TensorBoardTracker(log_dir, run_name, config),
              "wandb": lambda: WandbTracker(log_dir, run_name, tags, config),
              "mlflow": lambda: MlflowTracker(log_dir, run_name, tags, config)}
    log_dir.mkdir(parents=True, exist_ok=True)
    return Trackers({name: makers[name]() for name in chosen})


# -- what the trainer logs ---------------------------------------------------------------------------
X_AXES = ("step", "tokens", "flops")
EVAL_KEYS = {"eval_mlm_loss": "mlm_loss", "eval_mlm_acc": "mlm_acc", "eval_mlm_ppl": "mlm_ppl",
             "eval_mlm_loss_se": "mlm_loss_se", "eval_mlm_majority_acc": "mlm_majority_acc",
             "eval_sentence_loss": "sentence_loss", "eval_sentence_acc": "sentence_acc",
             "eval_nsp_acc": "nsp_acc", "eval_sop_acc": "sop_acc",
             "eval_mlm_unigram_entropy": "mlm_unigram_entropy", "eval_mlm_unigram_gap": "mlm_unigram_gap"}


def x_axis(train_cfg) -> str:
    """The budget's own x-axis: FLOPs or tokens for those budgets, else optimizer steps
    (a time budget's seconds are not reproducible, its steps are)."""
    return "flops" if train_cfg.max_flops else "tokens" if train_cfg.max_tokens else "step"


def step_scalars(losses: list[float], lr: float, grad_norm: float, tokens_per_s: float, where: Mapping,
                 sentence: bool) -> dict[str, float]:
    out = {"train/loss": losses[0], "train/mlm_loss": losses[1], "train/lr": lr, "train/grad_norm": grad_norm,
           "train/tokens_per_s": tokens_per_s}
    if sentence:
        out["train/sentence_loss"] = losses[2]
    return out | progress_scalars(where)


def eval_scalars(scores: Mapping, curve: bool = False) -> dict[str, float]:
    """A full held-out evaluation as `eval/*`; a curve point (the first examples only) as
    `eval/curve_*`, so the two are never drawn as one line. (`progress/*` comes with the
    training points: twice at one step would draw a zigzag.)"""
    prefix = "eval/curve_" if curve else "eval/"
    return {prefix + name: scores[key] for key, name in EVAL_KEYS.items() if scores.get(key) is not None}


def progress_scalars(where: Mapping) -> dict[str, float]:
    return {f"progress/{k}": where[k] for k in ("step", "tokens", "flops", "seconds") if k in where}
