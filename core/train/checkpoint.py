"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint holds model, optimizer, progress (which drives the schedule), RNG states and
the data position, so a resumed run reproduces an uninterrupted one exactly on CPU.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from core.files import atomic_path
from core.train.budget import BUDGET_FIELDS, fraction_under

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path) -> dict:
    """Never unpickles arbitrary objects; a damaged file is named, not a deep traceback."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, bad magic, unsafe pickle...
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated and cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Delete it to start the run "
            "over, or restore it from a backup"
        ) from None


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
LATER_DEFAULTS = {"schedule": "linear", "decay": 0.2, "warmup_steps": 0, "max_flops": 0.0, "init_positions": "repeat",
                  "precision": "auto", "mlm_bias": "zero"}


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
    ident = {"model": model_cfg.to_dict(), "train": train,
             "data": getattr(data, "fingerprint", None) or data.cfg.to_dict()}
    if eval_data is not None and eval_data is not data:
        ident["eval_data"] = getattr(eval_data, "fingerprint", None) or eval_data.cfg.to_dict()
    return json.loads(json.dumps(ident, default=str))


def budget_change_refusal(train_cfg, state: dict, budget: dict) -> str | None:
    """Why a checkpoint of this configuration, made under another budget, must not be
    continued under `budget` (None: it may).

    A linear schedule keeps the rule it always had: a changed budget continues the run.
    A wsd run is continued only where it stays one trajectory: every step already taken
    must have had the same learning rate under both budgets. So the warm-up must not depend
    on the budget (`warmup_steps`, or no warm-up), and the last step taken (at
    `lr_position`, the progress when its rate was set) must lie before the cooldown under
    both. A stable-phase checkpoint therefore continues under a larger budget (or branches
    a shorter run's cooldown: the ladder); one that has begun to cool down restarts."""
    old = state.get("budget") or {}
    if train_cfg.schedule != "wsd" or old == budget:
        return None
    if train_cfg.warmup and not train_cfg.warmup_steps:
        return (f"was made under the budget {old} with a warm-up of {train_cfg.warmup} of the budget, which "
                "changes with the budget (set warmup_steps to share warm-ups across budgets)")
    at = state.get("lr_position") or state["progress"]
    stable_end = 1.0 - train_cfg.decay
    for which, b in (("its budget", old), ("the new budget", budget)):
        if fraction_under(at, b) > stable_end:
            return (f"has entered its cooldown (the last {train_cfg.decay} of {which}), so it is not on the "
                    f"trajectory of a run with the budget {budget} (it was made under {old})")
    return None


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
