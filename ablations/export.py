"""Finished arms as artefacts: the weights a run keeps, their export, stand-alone fine-tuning
and warm starts from them.

A finished (ok) arm keeps its final weights in the native format in its arm directory
(`RUN_DIR/arms/ARM/`: bert_ablate.json, model.safetensors, sentencepiece.model; a few MB at
size mini), while its training checkpoint (optimizer state included, about three times
larger) is deleted unless --keep-checkpoints. So `export`, `finetune` and `init_from` work
on any finished arm without re-training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ablations.downstream import finetune_config, load_tasks
from ablations.results import ARMS, RESULTS, arm_dir, latest_by, read_rows
from core.finetune import SeedSummary, finetune_seeds
from core.interop import MARKER, ExportResult, LoadedArm, export_arm, load_arm, save_native
from core.model import PretrainingModel
from core.registry import unknown_name_error
from core.train import CHECKPOINT, TrainConfig

WEIGHTS_NOTE = "final weights (native format) kept for export, finetune and init_from"


def keep_final_weights(model: PretrainingModel, tokenizer_path: str | Path, directory: Path,
                       info: dict[str, Any]) -> None:
    save_native(model, tokenizer_path, directory, {"source": info})


def drop_checkpoint(directory: Path) -> None:
    """An ok arm's training checkpoint goes; its final weights (if kept) stay."""
    (directory / CHECKPOINT).unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def locate_arm(run_dir: str | Path, arm: str) -> Path:
    """RUN_DIR + ARM -> the arm's directory with its kept weights, or a one-line error."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {RESULTS}); give the --out of an "
                                "`ablations run`")
    rows = latest_by(read_rows(run_dir / RESULTS), "arm")
    if arm not in rows:
        raise unknown_name_error(f"arm in {run_dir}", arm, rows)
    directory = arm_dir(run_dir, rows[arm].get("same_as") or arm)
    if not (directory / MARKER).is_file():
        raise FileNotFoundError(f"arm {arm!r} (status {rows[arm].get('status')}) has no kept weights in {directory}; "
                                "only arms that finished ok keep them (runs made before this feature did not): "
                                "re-run the ablation to produce them")
    return directory


def resolve_source(path: str) -> str:
    """An init_from value: an exported arm directory, or RUN_DIR/ARM (-> RUN_DIR/arms/ARM)."""
    p = Path(path)
    if (p / MARKER).is_file() or (p / "config.json").is_file():
        return str(p)
    if (p.parent / RESULTS).is_file():
        return str(locate_arm(p.parent, p.name))
    raise FileNotFoundError(f"init_from {path!r}: neither an exported arm nor RUN_DIR/ARM of a finished run "
                            f"(with {p.parent / ARMS} holding its kept weights)")


def with_init_from(train: TrainConfig) -> TrainConfig:
    return train.replace(init_from=resolve_source(train.init_from)) if train.init_from else train


def load_run_arm(run_dir: str | Path, arm: str) -> LoadedArm:
    return load_arm(locate_arm(run_dir, arm))


def export_run_arm(run_dir: str | Path, arm: str, fmt: str, out: str | Path) -> ExportResult:
    loaded = load_run_arm(run_dir, arm)
    info = {"run_dir": str(run_dir), "arm": arm}
    return export_arm(loaded.model, loaded.tokenizer.path, out, fmt, {"source": info})


def finetune_run_arm(run_dir: str | Path, arm: str, tasks: list[str], steps: int, seeds: int,
                     device: str = "auto", **fields: Any) -> list[SeedSummary]:
    """`fields`: further FinetuneConfig fields (eval_every, max_length, lr, ...)."""
    loaded = load_run_arm(run_dir, arm) if Path(run_dir, RESULTS).is_file() else load_arm(Path(run_dir) / arm)
    cfg = finetune_config(steps, device=device).replace(**fields)
    return [finetune_seeds(loaded.model, loaded.tokenizer, task, cfg, seeds) for task in load_tasks(tasks)]


def finish_arm(model: PretrainingModel, tokenizer_path: str | Path, directory: Path, info: dict[str, Any],
               tasks: tuple[str, ...], steps: int, seeds: int, device: str) -> dict[str, Any]:
    """After an arm trained ok: keep its weights; fine-tune it on the downstream tasks (row fields)."""
    keep_final_weights(model, tokenizer_path, directory, info)
    if not tasks:
        return {}
    from ablations.downstream import score_arm
    from core.data import Tokenizer

    try:
        return score_arm(model, Tokenizer(tokenizer_path), load_tasks(tasks), finetune_config(steps, device=device),
                         seeds)
    except Exception as err:  # noqa: BLE001 - the pretrained arm is a result even if fine-tuning fails
        return {"downstream_error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]} (the weights are kept: "
                                    f"retry with python -m ablations finetune)"}
