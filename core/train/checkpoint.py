"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint holds model, optimizer, progress (which drives the schedule), RNG states and
the data position, so a resumed run reproduces an uninterrupted one exactly on CPU.
Whether one may be continued is decided here too (`resume_decision`), from what made it:
the trainer only loads the state it is given.
"""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import torch

from core.errors import first_line
from core.files import atomic_path
from core.train.budget import BUDGET_FIELDS, Budget, fraction_under
from core.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj: object, path: Path) -> None:
    """Write a checkpoint whole or not at all: on failure the previous one stays in place,
    and the failure is one line naming the path and the likely cause (torch's own message
    from a full disk is `[enforce fail at inline_container.cc:672] . unexpected pos ...`)."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as err:
        raise CheckpointError(write_failure(Path(path), err)) from None


def write_failure(path: Path, err: Exception) -> str:
    cause = {errno.ENOSPC: "the disk is full", errno.EFBIG: "a file-size limit (ulimit -f) was reached",
             errno.EDQUOT: "the disk quota is exhausted"}.get(getattr(err, "errno", None))
    if cause is None:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
        except OSError:
            free = "free space unknown"
        cause = f"the write failed ({first_line(err, 160)}; {free}: a full disk, a file-size limit (ulimit -f) or a quota?)"
    kept = "the previous checkpoint is kept" if path.is_file() else "no earlier checkpoint exists"
    return (f"cannot write the checkpoint {path}: {cause}; {kept}, and running the same command again once the "
            "cause is fixed resumes from it")


def load_checkpoint(path: Path) -> dict:
    """Never unpickles arbitrary objects; a damaged file is named, not a deep traceback."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, bad magic, unsafe pickle...
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated and cannot be read "
            f"({type(err).__name__}: {first_line(err, 200)}). Delete it to start the run "
            "over, or restore it from a backup"
        ) from None


def finished_training(path: Path) -> bool:
    """Whether the checkpoint at `path` holds a run that reached its budget (False when
    there is none or it cannot be read): a failure after it lies past training."""
    try:
        state = load_checkpoint(path)
    except (FileNotFoundError, CheckpointError):
        return False
    return bool(state.get("budget")) and fraction_under(state["progress"], state["budget"]) >= 1.0


# -- what made a checkpoint ---------------------------------------------------------------------
# TrainConfig fields that change neither the weights nor the recorded scores (compile and
# unpad are ways of executing the same model: in training they draw other dropout masks,
# a resumed run under another setting goes on with those); flops_per_step
# is a measurement of the configuration, not a choice (it may differ slightly between devices,
# e.g. fused attention recomputes its scores): a run resumed elsewhere goes on counting at the
# new rate (Progress.flops holds what was spent)
BOOKKEEPING_FIELDS = ("eval_every", "checkpoint_every", "log_every", "device", "eval_batch_size", "eval_points",
                      "curve_examples", "compile", "unpad", "flops_per_step")
# trajectory fields added after checkpoints (and results rows) existed: left out of the
# identity at these defaults, so that older checkpoints and finished rows keep theirs
LATER_DEFAULTS = {"schedule": "linear", "decay": 0.2, "warmup_steps": 0, "max_flops": None, "init_positions": "repeat",
                  "precision": "auto", "mlm_bias": "zero",
                  # the training recipe (issue 35): optimizer, its groups' rates, the batch ramp
                  "optimizer": "adamw", "muon_lr_ratio": 1.0, "muon_adjust_lr": "match_rms_adamw",
                  "adafactor_lr_ratio": 100.0, "batch_size_warmup": 0.0, "batch_size_warmup_start": 0.25,
                  "batch_size_warmup_by": "batch"}


def trajectory_identity(model_cfg, train_cfg, data, eval_data=None, world_size: int = 1) -> dict:
    """Everything that shapes the training trajectory: the model, data and train configs,
    the seed, and the corpus/tokenizer identity (`data.fingerprint` covers both, and the
    data config). The budget is kept apart: extending it may continue a run.
    The world size is not part of it: `grad_accum` is recorded as batches per optimizer
    step over all ranks (grad_accum x world_size), so 2 ranks with grad_accum 1 and one
    process with grad_accum 2 make, and continue, the same run."""
    train = {k: v for k, v in train_cfg.to_dict().items() if k not in BUDGET_FIELDS + BOOKKEEPING_FIELDS
             and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    train["grad_accum"] = train_cfg.grad_accum * world_size
    if train_cfg.batch_size_warmup and train_cfg.batch_size_warmup_by == "accum":
        # a ramp by accumulation takes a whole number of micro-batches on every rank, so its
        # steps depend on how grad_accum x world_size is split between the two
        train["world_size"] = world_size
    ident = {"model": model_cfg.to_dict(), "train": train,
             "data": getattr(data, "fingerprint", None) or data.cfg.to_dict()}
    if eval_data is not None and eval_data is not data:
        ident["eval_data"] = getattr(eval_data, "fingerprint", None) or eval_data.cfg.to_dict()
    return json.loads(json.dumps(ident, default=str))


def budget_change_refusal(train_cfg: TrainConfig, state: dict, budget: dict, data_cfg=None) -> str | None:
    """Why a checkpoint of this configuration, made under another budget, must not be
    continued under `budget` (None: it may).

    A run is continued only where it stays one trajectory: every step already taken must
    have had the learning rate that a fresh run under `budget` gives it, and no step may
    lie past the new budget. A linear schedule lays its decay over the whole budget, so
    under another budget every step had another rate: it restarts. (Continuing it was
    silently wrong: a 50-step checkpoint of a 100-step run, resumed under 20 steps, gave a
    row that said 20 and had trained 50.) A wsd run keeps a constant rate until its
    cooldown: it continues where the warm-up does not depend on the budget (`warmup_steps`,
    or no warm-up) and the last step taken (at `lr_position`, the progress when its rate
    was set) lies before the cooldown under both budgets. A stable-phase checkpoint
    therefore continues under a larger budget (or branches a shorter run's cooldown: the
    ladder); one that has begun to cool down restarts. A batch ramp over a fraction of the
    budget, and a masking-rate schedule over all of it (`data_cfg.mask_prob_end`), change with
    the budget as a fractional warm-up does: such a run restarts."""
    old, budget = Budget.of(state.get("budget") or {}).fields(), Budget.of(budget).fields()
    if old == budget:  # the set fields alike (a checkpoint of an older version wrote 0 for unset)
        return None
    if train_cfg.schedule != "wsd":
        return (f"was made under the budget {_budget_text(old)}; its {train_cfg.schedule} schedule decays the rate "
                f"over the whole budget, so every step it took had another rate than under {_budget_text(budget)}")
    if train_cfg.warmup and not train_cfg.warmup_steps:
        return (f"was made under the budget {_budget_text(old)} with a warm-up of {train_cfg.warmup} of the budget, "
                "which changes with the budget (set warmup_steps to share warm-ups across budgets)")
    if train_cfg.batch_size_warmup:
        return (f"was made under the budget {_budget_text(old)} with a batch ramp over {train_cfg.batch_size_warmup} "
                "of the budget, which changes with the budget")
    if data_cfg is not None and getattr(data_cfg, "mask_prob_end", None) is not None:
        return (f"was made under the budget {_budget_text(old)} with a masking rate going from {data_cfg.mask_prob} "
                f"to {data_cfg.mask_prob_end} over the whole budget, so every step it took had another rate")
    at = state.get("lr_position") or state["progress"]
    stable_end = 1.0 - train_cfg.decay
    for which, b in (("its budget", old), ("the new budget", budget)):
        if fraction_under(at, b) > stable_end:
            return (f"has entered its cooldown (the last {train_cfg.decay} of {which}), so it is not on the "
                    f"trajectory of a run with the budget {_budget_text(budget)} (it was made under "
                    f"{_budget_text(old)})")
    return None


def _budget_text(budget: dict) -> str:
    """{'max_steps': 100, 'max_tokens': 0} -> 'max_steps=100' (the set fields only)."""
    return ", ".join(f"{k}={v:g}" for k, v in budget.items() if v) or "(none)"


def fingerprint_of(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def describe_changes(old: dict | None, new: dict, limit: int = 4) -> str:
    """'train.lr 0.001 -> 0.0005, model.num_layers 2 -> 4': what differs, for a one-line note."""
    if not old:
        return "it records no configuration (an older format)"
    changes = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{section}.{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(f"{section} {'data (corpus, tokenizer or data config)' if section != 'model' else ''}"
                           .strip() + " differs")
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(changes[:limit]) + more if changes else "nothing visible"


# -- whether a checkpoint may be continued ---------------------------------------------------------
def resume_decision(state: dict, path: Path, identity: dict, budget: dict,
                    train_cfg: TrainConfig, data_cfg=None) -> tuple[dict | None, dict]:
    """The checkpoint `state` (read from `path`) to continue, or None, and how the run
    begins (the trainer's `resume_info`), for a run of `identity` (`trajectory_identity`)
    under `budget` (the BUDGET_FIELDS of `train_cfg`).

    Only the same configuration continues a checkpoint. A checkpoint of another
    configuration is never continued: the run starts over and says why ("restarted"), as
    it does for one that `budget_change_refusal` refuses. A larger budget may continue a
    run, recorded as "extended"; a shorter one "branched" (a wsd run resumed from the
    stable phase of a longer one: the ladder's rungs); the same budget "resumed"."""
    where = f"checkpoint {path} (step {state['progress']['step']})"
    if state.get("fingerprint") != fingerprint_of(identity):
        old = json.loads(state["identity"]) if "identity" in state else None
        return None, _restarted(f"{where} was made under another configuration: {describe_changes(old, identity)}")
    refusal = budget_change_refusal(train_cfg, state, budget, data_cfg)
    if refusal:
        return None, _restarted(f"{where} {refusal}")
    return state, _continued(state, budget)


def _restarted(why: str) -> dict:
    return {"kind": "restarted", "reason": f"{why}; starting over"}


def _continued(state: dict, budget: dict) -> dict:
    """How a continued checkpoint's run begins: "resumed" at its step, or "extended" or
    "branched" (with the budget it was made under: its set fields) where that budget differs."""
    old, budget = Budget.of(state.get("budget") or {}).fields(), Budget.of(budget).fields()
    info = {"kind": "resumed", "from_step": state["progress"]["step"]}
    if old != budget:  # a wsd run from its stable phase (budget_change_refusal)
        shorter = any(old.get(k) and v < old[k] for k, v in budget.items())
        info.update(kind="branched" if shorter else "extended", budget_before=old)
    return info
