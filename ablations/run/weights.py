"""Finished arms as artefacts: the weights a run keeps, and exporting, fine-tuning or warm
starting from them.

A finished (ok) (arm, seed) keeps its final weights in the native format in its directory
(`RUN_DIR/arms/ARM/seed-K/`: bert_ablate.json, model.safetensors, sentencepiece.model; a
few MB at size mini), while its training checkpoint (optimizer state included, about three
times larger) is deleted unless --keep-checkpoints. The kept weights carry the key of the
row they belong to, so `export`, `finetune` and `init_from` take exactly what that row
reports, or refuse and name the row.

An arm is named `ARM` (its first seed: seed 0 unless the run began at `--seed K`), or
`ARM@K` for seed K.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.rows import Row
from ablations.run.downstream import finetune_config, load_tasks
from ablations.rundir import ARMS, RESULTS, arm_dir, read_results, results
from ablations.specs import RUN_DIR_ARM, run_arm_ref, split_arm_seed
from core.finetune import SeedSummary, finetune_seeds
from core.interop import MARKER, ExportResult, LoadedArm, check_loadable, export_arm, load_arm, save_native
from core.model import PretrainingModel
from core.registry import unknown_name_error
from core.train import CHECKPOINT, TrainConfig


def keep_final_weights(model: PretrainingModel, tokenizer_path: str | Path, directory: Path,
                       info: dict[str, Any]) -> None:
    """info: the row's arm, seed and key, kept beside the weights (`locate_arm` checks them)."""
    save_native(model, tokenizer_path, directory, {"source": info})


def drop_checkpoint(directory: Path) -> None:
    """An ok arm's training checkpoint goes; its final weights (if kept) stay."""
    (directory / CHECKPOINT).unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


@dataclass(frozen=True)
class KeptArm:
    directory: Path
    arm: str
    seed: int
    seeds: tuple[int, ...]   # every seed of the arm in the run

    def __str__(self) -> str:
        others = f" (of seeds {', '.join(map(str, self.seeds))}: name one as {self.arm}@K)" if len(self.seeds) > 1 else ""
        return f"{self.arm} seed {self.seed}{others}"


def locate_arm(run_dir: str | Path, arm: str, seed: int | None = None) -> Path:
    """RUN_DIR + ARM[@K] -> the directory of the weights its result row reports, or one line saying why not."""
    return find_kept(run_dir, arm, seed).directory


def find_kept(run_dir: str | Path, arm: str, seed: int | None = None) -> KeptArm:
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {RESULTS}); give the --out of an "
                                "`ablations run`")
    arm, seed = split_arm_seed(arm, seed)
    rows = results(read_results(run_dir))
    seeds = sorted(s for a, s in rows if a == arm)
    if not seeds:
        raise unknown_name_error(f"arm in {run_dir}", arm, sorted({a for a, _ in rows}))
    if seed is None:
        seed = seeds[0]
    elif seed not in seeds:
        raise ValueError(f"arm {arm!r} has no seed {seed} in {run_dir}; its seeds: {', '.join(map(str, seeds))} "
                         f"(name one as {arm}@K or with --seed K)")
    row = rows[(arm, seed)]
    where = f"arm {arm!r} seed {seed} (its result row of {row.timestamp or '?'})"
    if not row.ok:
        raise ValueError(f"{where} ended {row.status!r}, not ok: it has no weights to use "
                         f"({row.error or 'no error recorded'}); re-run the ablation for this arm")
    directory = run_dir / row.weights_dir if row.weights_dir else arm_dir(run_dir, row.same_as or arm, seed)
    if not (directory / MARKER).is_file():
        raise FileNotFoundError(f"{where} has no kept weights in {directory} (runs made before weights were kept "
                                "have none): re-run the ablation to produce them")
    _check_weights_match(directory, row, where)
    return KeptArm(directory, arm, seed, tuple(seeds))


def _check_weights_match(directory: Path, row: Row, where: str) -> None:
    from core.interop.native import read_marker

    kept = (read_marker(directory).get("source") or {}).get("key")  # the marker beside the weights
    if kept and row.key and kept != row.key:
        raise ValueError(f"{where}: the weights in {directory} belong to another configuration (key {kept}, the "
                         f"row says {row.key}): re-run the ablation for this arm")


def resolve_source(path: str) -> str:
    """An init_from value: an exported arm directory, or RUN_DIR/ARM[@K] (its kept weights).
    An HF-format directory without transformers installed fails here, in one line naming the extra."""
    p = Path(path)
    if (p / MARKER).is_file() or (p / "config.json").is_file():
        check_loadable(p, f"init_from {path} (an HF-format arm)")
        return str(p)
    if (p.parent / RESULTS).is_file():
        return str(locate_arm(p.parent, p.name))
    raise FileNotFoundError(f"init_from {path!r}: neither an exported arm nor RUN_DIR/ARM of a finished run "
                            f"(with {p.parent / ARMS} holding its kept weights)")


def with_init_from(train: TrainConfig, run_dir: Path, seed: int) -> TrainConfig:
    """The arm's warm start resolved to a directory of weights. `RUN_DIR/ARM` names an arm of
    this run (its same seed, or `ARM@K`), trained before it (`AblationSpec` checks the order):
    long_context's arms all start from its `start-512`, seed by seed, so that a seed's arms
    share one start and their differences stay paired."""
    if not train.init_from:
        return train
    if ref := run_arm_ref(train.init_from):
        arm, k = ref
        return train.replace(init_from=str(_run_start(run_dir, arm, seed if k is None else k)))
    return train.replace(init_from=resolve_source(train.init_from))


def _run_start(run_dir: Path, arm: str, seed: int) -> Path:
    row = results(read_results(run_dir)).get((arm, seed)) if (run_dir / RESULTS).is_file() else None
    if row is None or not row.ok:
        state = "has not been trained" if row is None else f"ended {row.status!r}"
        raise FileNotFoundError(f"init_from {RUN_DIR_ARM}{arm}: that arm of this run (seed {seed}) {state}, so "
                                "there is nothing to start from; it trains before this arm: re-run the ablation "
                                f"(with --arms, include {arm})")
    return locate_arm(run_dir, arm, seed)


def load_run_arm(run_dir: str | Path, arm: str, seed: int | None = None) -> LoadedArm:
    return load_arm(locate_arm(run_dir, arm, seed))


def export_run_arm(run_dir: str | Path, arm: str, fmt: str, out: str | Path,
                   seed: int | None = None) -> tuple[ExportResult, KeptArm]:
    run_dir, out = Path(run_dir), Path(out)
    if out.resolve().is_relative_to((run_dir / ARMS).resolve()):
        raise ValueError(f"--out {out} lies inside the run's {ARMS}/ directory, where the kept weights live; "
                         "export to a directory outside it")
    kept = find_kept(run_dir, arm, seed)
    loaded = load_arm(kept.directory)
    info = {"run_dir": str(run_dir), "arm": kept.arm, "seed": kept.seed}
    return export_arm(loaded.model, loaded.tokenizer.path, out, fmt, {"source": info}), kept


def finetune_run_arm(run_dir: str | Path, arm: str, tasks: list[str], steps: int, seeds: int,
                     device: str = "auto", seed: int | None = None, **fields: Any) -> list[SeedSummary]:
    """`fields`: further FinetuneConfig fields (eval_every, max_length, lr, ...). A span-QA
    task's test predictions go beside the weights fine-tuned, as in a run with --downstream:
    WEIGHTS/downstream/TASK/finetune-seed-S/predictions.json (unless `predictions_dir` is given)."""
    directory = locate_arm(run_dir, arm, seed) if Path(run_dir, RESULTS).is_file() else Path(run_dir) / arm
    loaded = load_arm(directory)
    cfg = finetune_config(steps, device=device).replace(**{"predictions_dir": str(directory / "downstream"),
                                                           **fields})
    return [finetune_seeds(loaded.model, loaded.tokenizer, task, cfg, seeds) for task in load_tasks(tasks)]
