"""The optimizers a training run can take (`TrainConfig.optimizer`), the learning-rate
schedules they follow, and the batch-size ramp.

- `adamw` (the default) is the one AdamW that measured steps and trained steps share.
- `stable_adamw` is torch-optimi's StableAdamW (ModernBERT's optimizer): AdamW whose update
  is scaled down, per tensor, where the gradient outgrows its second moment (AdaFactor's
  update clipping; Wortsman et al. 2023).
- `muon` is `torch.optim.Muon` on the hidden matrices and AdamW on the rest (`muon_split`).
- `adafactor` is `torch.optim.Adafactor`: factored second moments, no first moment, a step
  relative to each parameter's RMS.

Every optimizer is a library's; nothing here updates a weight. `TrainConfig.lr` is an
AdamW-scale rate: each parameter group trains at lr x its `lr_scale` (`group_rates`), so that
one grid of multiples (`--lr-search`) brackets every optimizer, and every group's decoupled
weight decay per step stays lr x weight_decay whatever its scale.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.registry import unknown_name_error

if TYPE_CHECKING:
    import torch


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch and device support it (the same update
    in one pass: about 15% of a small model's CPU step), the reference loop otherwise."""
    import torch  # here, not above: TrainConfig validates schedules without importing torch

    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, **kwargs)


# the width rule's anchor: the peak rate that leaves the unigram stage soonest at H = 128
# (the CPU budgets' micro size; docs/training.md#the-learning-rate-follows-the-width)
BASE_LR, BASE_WIDTH = 1e-3, 128


def lr_for_width(hidden_size: int, base_lr: float = BASE_LR, base_width: int = BASE_WIDTH) -> float:
    """The peak rate for a model of width H: base_lr x base_width / H (muP's rule for Adam on
    hidden matrices). Adam's first steps move the hidden states by about lr x width, so a
    rate that suits H = 128 moves a model of H = 768 six times as far."""
    return base_lr * base_width / hidden_size


def warmup_linear_decay(fraction: float, warmup: float) -> float:
    """The learning-rate factor at `fraction` of the budget: linear warm-up over the first
    `warmup` fraction, then linear decay to 0. Pretraining and fine-tuning share it."""
    if warmup and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    return max(0.0, (1.0 - fraction) / (1.0 - warmup)) if warmup < 1 else 1.0


def warmup_stable_decay(fraction: float, warmup: float, decay: float) -> float:
    """Warmup-stable-decay (WSD; MiniCPM, Hu et al. 2024; Hägele et al. 2024): linear
    warm-up over the first `warmup` fraction, the peak rate until `1 - decay`, then a
    cooldown to 0 over the last `decay` fraction.

    Why WSD: up to its cooldown the rate does not depend on the budget, so one long
    constant-rate run is every shorter run's trajectory too, and each budget costs only
    its cooldown (the ablations' `--ladder`). The cooldown is 1 - sqrt, not linear: Hägele
    et al. find it reaches a lower final loss than a linear cooldown of the same length,
    on par with a cosine schedule tuned to the budget."""
    if warmup and fraction < warmup:
        return max(fraction / warmup, 1e-3)
    start = 1.0 - decay
    if fraction <= start:
        return 1.0
    left = max(0.0, 1.0 - fraction) / decay  # of the cooldown, from 1 to 0 (exact at both ends)
    return 1.0 - math.sqrt(max(0.0, 1.0 - left))


SCHEDULES = {
    "linear": lambda fraction, warmup, decay: warmup_linear_decay(fraction, warmup),
    "wsd": warmup_stable_decay,
}


def check_schedule(name: str) -> None:
    if name not in SCHEDULES:
        raise unknown_name_error("schedule", name, SCHEDULES)


def lr_factor(schedule: str, fraction: float, warmup: float, decay: float, step: int = 0,
              warmup_steps: int = 0) -> float:
    """The factor for the step about to be taken (`step` steps done, `fraction` of the
    budget used). `warmup_steps` > 0 replaces the fractional warm-up by a ramp over that
    many steps, whatever the budget: then a WSD run's rates up to its cooldown are the same
    for every budget (a linear schedule still decays over the whole budget, ramp applied)."""
    check_schedule(schedule)
    if warmup_steps > 0:
        return min(1.0, max(step / warmup_steps, 1e-3)) * SCHEDULES[schedule](fraction, 0.0, decay)
    return SCHEDULES[schedule](fraction, warmup, decay)


# -- the optimizers -----------------------------------------------------------------------------------
OPTIMIZERS = ("adamw", "stable_adamw", "muon", "adafactor")
MUON_ADJUST_LR = ("match_rms_adamw", "original")  # torch.optim.Muon's adjust_lr_fn


def check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise unknown_name_error("optimizer", name, OPTIMIZERS)


def muon_split(named_parameters: Iterable[tuple[str, Any]]) -> tuple[list[str], list[str]]:
    """Which parameters Muon trains and which AdamW trains, by name: Muon takes the encoder's
    2-D weights (attention's query/key/value/out, the feed-forward's matrices: the hidden
    layers), AdamW everything else: the embeddings (word, position and segment tables, the
    factorized E -> H projection), every norm and bias (1-D), and the heads (the MLM head's
    transform and its output tied to the word embeddings, the sentence head). Muon
    orthogonalises a layer's update, which suits a matrix mapping hidden states to hidden
    states; an embedding row or an output row is a per-token vector, and a gain or a bias is
    not a matrix at all (Jordan et al. 2024; Moonlight, Liu et al. 2025, section 2)."""
    muon, adamw_names = [], []
    for name, p in named_parameters:
        (muon if name.startswith("encoder.") and p.ndim == 2 else adamw_names).append(name)
    return muon, adamw_names


@dataclass(frozen=True)
class OptimizerSettings:
    """What builds an optimizer (TrainConfig's fields of the same names)."""
    optimizer: str = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    muon_lr_ratio: float = 1.0
    muon_adjust_lr: str = "match_rms_adamw"
    adafactor_lr_ratio: float = 100.0

    @classmethod
    def of(cls, cfg: Any) -> OptimizerSettings:
        """From a TrainConfig (or anything with these attributes; a missing one keeps its default)."""
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__ if hasattr(cfg, k)})


def param_groups(model, settings: OptimizerSettings) -> list[dict]:
    """The parameter groups, each named (`name`) and with its rate's scale over the
    configured lr (`lr_scale`): "decay" (>= 2-D: decayed), "no_decay" (norms and biases) and,
    for Muon, "muon" (`muon_split`), taken out of "decay". A parameter used twice (tied or
    shared) is in one group once."""
    named = list(dict((id(p), (n, p)) for n, p in model.named_parameters() if p.requires_grad).values())
    muon_names = set(muon_split(named)[0]) if settings.optimizer == "muon" else set()
    scale = {"muon": 1.0, "stable_adamw": 1.0, "adamw": 1.0, "adafactor": settings.adafactor_lr_ratio}
    base = scale[settings.optimizer]
    groups = [("muon", [p for n, p in named if n in muon_names], settings.muon_lr_ratio, settings.weight_decay),
              ("decay", [p for n, p in named if n not in muon_names and p.ndim >= 2], base, settings.weight_decay),
              ("no_decay", [p for n, p in named if n not in muon_names and p.ndim < 2], base, 0.0)]
    # decoupled weight decay shrinks a weight by lr x wd a step: the group's lr carries its scale, so its
    # wd is divided by it, and every optimizer decays a weight alike
    return [{"params": params, "name": name, "lr_scale": s, "weight_decay": wd / s}
            for name, params, s, wd in groups if params]


def build_optimizer(model, settings: OptimizerSettings):
    """The optimizer of `settings.optimizer` over `model`'s parameters (`param_groups`).
    Plain AdamW is built exactly as before the other optimizers existed (two groups, no
    names), so that its checkpoints and trajectories are unchanged."""
    import torch

    s = settings
    check_optimizer(s.optimizer)
    if s.optimizer == "adamw":
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return adamw(groups, lr=s.lr, betas=s.betas, eps=s.eps)
    groups = param_groups(model, s)
    for g in groups:
        g["lr"] = s.lr * g["lr_scale"]
    if s.optimizer == "stable_adamw":
        from optimi import StableAdamW

        return StableAdamW(groups, lr=s.lr, betas=s.betas, eps=s.eps)
    if s.optimizer == "adafactor":
        return torch.optim.Adafactor(groups, lr=s.lr * s.adafactor_lr_ratio)
    muon = [g for g in groups if g["name"] == "muon"]
    rest = [g for g in groups if g["name"] != "muon"]
    parts = {}
    if muon:
        parts["muon"] = torch.optim.Muon(muon, lr=s.lr * s.muon_lr_ratio, adjust_lr_fn=s.muon_adjust_lr)
    if rest:
        parts["adamw"] = adamw(rest, lr=s.lr, betas=s.betas, eps=s.eps)
    return Optimizers(parts)


class Optimizers:
    """Several library optimizers stepped as one (Muon on the hidden matrices, AdamW on the
    rest): their parameter groups in one list (the trainer sets each group's rate), one
    step, one zero_grad, one state dict ({part: its state dict}). It updates nothing itself."""

    def __init__(self, parts: dict[str, torch.optim.Optimizer]):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.parts.values() for g in opt.param_groups]

    @property
    def state(self) -> dict:
        return {p: s for opt in self.parts.values() for p, s in opt.state.items()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.parts):
            raise ValueError(f"optimizer state of parts {sorted(state)}, expected {sorted(self.parts)}")
        for name, opt in self.parts.items():
            opt.load_state_dict(state[name])


def optimizers_of(optimizer) -> list:
    return list(optimizer.parts.values()) if isinstance(optimizer, Optimizers) else [optimizer]


def optimizer_state_bytes(optimizer) -> int:
    """The bytes the optimizer's state holds: every tensor of its per-parameter state and of
    its groups (torch-optimi keeps its step count there), each storage once. AdamW keeps two
    moments (8 bytes a parameter in fp32), Muon one momentum on its matrices, Adafactor a row
    and a column of second moments per matrix. 0 before the first step (state is created then)."""
    import torch

    seen, total = set(), 0

    def add(value) -> None:
        nonlocal total
        if torch.is_tensor(value):
            storage = value.untyped_storage()
            key = (storage.data_ptr(), str(value.device))
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()

    for opt in optimizers_of(optimizer):
        for state in opt.state.values():
            for value in state.values():
                add(value)
        for group in opt.param_groups:
            for key, value in group.items():
                if key != "params":
                    add(value)
    return total


def group_rates(optimizer) -> list[tuple[str, float]]:
    """(group name, lr_scale) of every parameter group, in order ("decay"/"no_decay" for
    plain AdamW's unnamed groups)."""
    names = ("decay", "no_decay")
    return [(g.get("name", names[i] if i < 2 else f"group{i}"), g.get("lr_scale", 1.0))
            for i, g in enumerate(optimizer.param_groups)]


def describe_groups(optimizer, lr: float) -> dict[str, dict]:
    """Each group's parameters, peak rate and weight decay: {"muon": {"params": 393216,
    "tensors": 24, "lr": 0.001, "weight_decay": 0.01}, ...} (the row's `optimizer_groups`)."""
    out = {}
    for (name, scale), g in zip(group_rates(optimizer), optimizer.param_groups, strict=True):
        out[name] = {"params": sum(p.numel() for p in g["params"]), "tensors": len(g["params"]),
                     "lr": lr * scale, "weight_decay": g["weight_decay"]}
    return out


# -- the batch-size ramp ------------------------------------------------------------------------------
def batch_ramp(fraction: float, warmup: float, start: float) -> float:
    """The step's batch as a fraction of the configured one, at `fraction` of the budget
    used: linear from `start` to 1 over the first `warmup` of the budget (cramming's ramp,
    ModernBERT's batch-size warm-up), then 1. 1 throughout when `warmup` is 0."""
    if not warmup or fraction >= warmup:
        return 1.0
    return start + (1.0 - start) * max(0.0, fraction) / warmup


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))
