"""The run's settings: the flags resolved against the ablation's budget, once, typed.

Precedence, for every setting: a flag, then `--quick`'s smoke-test shapes, then the
ablation's budget (its CPU `defaults`, or `gpu_budget` with `--budget gpu`), then the
runner's defaults. Every value that came from a spec gets the same range checks as a flag.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ablations.plan.options import LIMITS, QUICK_VOCAB, RunOptions
from ablations.specs import AblationSpec
from core.registry import unknown_name_error
from core.train import Budget
from variants import SIZES

DEFAULTS = {"size": "mini", "seq_len": 128, "batch_size": 16, "tokens": 60_000, "vocab_size": 8000, "lr": None,
            "long_seq_len": 2048}  # lr None: each arm's rate follows its width (core.optim.lr_for_width)
QUICK = {"size": "tiny", "seq_len": 64, "batch_size": 4, "steps": 3, "vocab_size": QUICK_VOCAB, "long_seq_len": 128}


@dataclass(frozen=True)
class RunSettings:
    size: str
    seq_len: int
    batch_size: int
    budget: Budget          # per arm; a time budget is split among the trained arms (plan.resolve)
    vocab_size: int
    lr: float | None        # one rate for every arm (--lr or the spec's), or None: the width rule per arm
    long_seq_len: int       # an extra saved-bytes figure at this length; 0 disables

    def with_vocab(self, vocab_size: int) -> RunSettings:
        return replace(self, vocab_size=vocab_size)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "budget": self.budget.fields()}


def settle(spec: AblationSpec, opts: RunOptions) -> RunSettings:
    chosen = dict(spec.gpu_budget if opts.budget == "gpu" and spec.gpu_budget else spec.defaults)
    chosen.pop("why", None)
    layer = QUICK if opts.quick else chosen  # --quick's small shapes win over an ablation's budget

    def pick(name: str, flag: Any) -> Any:
        return flag if flag is not None else layer.get(name, chosen.get(name, DEFAULTS[name]))

    size = pick("size", opts.size)
    if size not in SIZES:
        raise unknown_name_error("size", size, SIZES)
    settings = RunSettings(size=size, seq_len=pick("seq_len", opts.seq_len),
                           batch_size=pick("batch_size", opts.batch_size), budget=_budget(chosen, opts),
                           vocab_size=pick("vocab_size", opts.vocab_size), lr=pick("lr", opts.lr),
                           long_seq_len=pick("long_seq_len", opts.long_seq_len))
    _check(settings, spec.name)
    return settings


def _budget(chosen: dict[str, Any], opts: RunOptions) -> Budget:
    flags = Budget(max_flops=opts.flops, max_tokens=opts.tokens, max_steps=opts.steps, max_seconds=opts.time_budget)
    if flags:
        return flags
    if opts.quick:
        return Budget(max_steps=QUICK["steps"])
    given = {k: chosen[k] for k in ("tokens", "steps") if k in chosen} or {"tokens": DEFAULTS["tokens"]}
    return Budget(max_tokens=given.get("tokens"), max_steps=given.get("steps"))


def _check(s: RunSettings, where: str) -> None:
    values = {"seq_len": s.seq_len, "batch_size": s.batch_size, "vocab_size": s.vocab_size,
              "steps": s.budget.max_steps, "tokens": s.budget.max_tokens}
    for name, value in values.items():
        low, what = LIMITS[name]
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < low):
            raise ValueError(f"{where}: {name} must be >= {low} ({what}), got {value!r}")
    if s.lr is not None and (not isinstance(s.lr, int | float) or not s.lr > 0):
        raise ValueError(f"{where}: lr must be > 0, got {s.lr!r}")
