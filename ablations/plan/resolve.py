"""An arm of an ablation, resolved to the three configs that define its run.

An arm resolves to (ModelConfig, DataConfig, TrainConfig) from the base variant, the
ablation's base overrides, the arm's overrides and the run's settings, in that order.
Every conflict is found here, for every arm, before any data is built or any arm trains.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ablations.config import RunConfig
from ablations.plan.ladder import warmup_steps_for
from ablations.specs import AblationSpec, Arm
from core.data import DataConfig
from core.interop import check_loadable
from core.model import ModelConfig
from core.optim import BASE_LR, BASE_WIDTH, lr_for_width
from core.train import TrainConfig
from core.train.checkpoint import LATER_DEFAULTS
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
    key: str          # identity of the configuration (seed included): finished rows match on it
    seed: int
    eval_data: DataConfig | None = None   # whose held-out set scores it: the base arm's where allowed (`pair_eval_sets`)
    eval_set: str = "own"                  # "base": scored on its seed's base arm's held-out set
    lr_source: str = ""                    # where train.lr came from: the width rule, --lr / the spec, the arm
    lr_search: dict | None = None          # --lr-search: the rates tried, their losses, the choice, the cost
    notes: tuple[str, ...] = ()            # what the arm asks for that this size does not build (`size_notes`)
    derived: tuple[str, ...] = ()          # train fields derived by the runner, not set by the arm (`with_measured_flops`)

    @property
    def described(self) -> str:
        """The arm's description, corrected by what was built: the run's banner line."""
        text = self.arm.description or ""
        return f"{text} ({'; '.join(self.notes)})".strip() if self.notes else text


def size_notes(model: ModelConfig, requested: set[str], seq_len: int | None = None) -> tuple[str, ...]:
    """Components an arm names (a factorized E, shared layers) that the resolved model does
    not have at this size, so that the banner says what was built: ALBERT's E=128 at
    --quick's H=128 is no factorization, and sharing with one group per layer shares nothing."""
    notes = []
    if "embedding_size" in requested and not model.factorized:
        notes.append(f"at this size E = H = {model.hidden_size}: not factorized")
    if model.sharing != "none" and model.num_groups == model.num_layers:
        notes.append(f"{model.num_groups} groups for {model.num_layers} layers: nothing is shared")
    if model.has_local_layers and seq_len is not None and window_covers(model.local_window, seq_len):
        notes.append(f"a {model.local_window}-token window covers {seq_len} tokens: every layer is global")
    return tuple(notes)


def resolve_model(spec: AblationSpec, arm: Arm, config: RunConfig) -> tuple[ModelConfig, dict[str, Any]]:
    """The arm's ModelConfig at the run's size and length, and the model overrides it asked for."""
    model_over = _split({**spec.base_overrides, **arm.overrides})["model"]
    layers = SIZES[config.size][0]
    model_over = {k: (layers if (k == "num_groups" and v == "L") else v) for k, v in model_over.items()}
    if "local_window" in model_over:
        model_over["local_window"] = relative_window(model_over["local_window"], config.seq_len, arm.name)
    model_over.setdefault("vocab_size", config.vocab_size)
    model_over.setdefault("max_position_embeddings", max(512, config.seq_len))
    model = get_config(spec.base, config.size, **model_over)
    if config.seq_len > model.max_position_embeddings:
        raise ValueError(f"arm {arm.name!r}: --seq-len {config.seq_len} exceeds model.max_position_embeddings="
                         f"{model.max_position_embeddings}; lower --seq-len or raise model.max_position_embeddings")
    return model, model_over


def relative_window(value: Any, seq_len: int, arm: str) -> Any:
    """"T/8" -> seq_len // 8 (at least 2): a sliding window scaled to the length the run
    trains at, as sharing's "L" groups follow the size; ModernBERT's 128-token window at its
    1,024-token pretraining length is T/8. A window as wide as the sequence is full attention."""
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"\s*T\s*/\s*(\d+)\s*", value)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"arm {arm!r}: model.local_window {value!r}: give tokens (e.g. 128) or a fraction of the "
                         "training length as 'T/k' (e.g. 'T/8')")
    return max(2, seq_len // int(m.group(1)))


def base_rate(model: ModelConfig, config: RunConfig) -> tuple[float, str]:
    """An arm's own peak rate and where it comes from: one rate for all (--lr or the spec),
    or the width rule."""
    if config.lr is not None:
        return config.lr, "one rate for all arms (--lr or the spec)"
    return lr_for_width(model.hidden_size), f"width rule: {BASE_LR:g} x {BASE_WIDTH} / H={model.hidden_size}"


def _split(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    for k, v in overrides.items():
        section, _, name = k.partition(".")
        out[section][name] = v
    return out


def resolve_arm(spec: AblationSpec, arm: Arm, config: RunConfig, corpus_fp: str, n_trained: int = 1,
                seed: int | None = None, rate: tuple[float, str] | None = None) -> ResolvedArm:
    """Seed k is the same for every arm: initialisation, data order and masks. `config` is
    settled (`plan.config.settle`). `rate`: the arm's rate chosen elsewhere (--lr-search)
    and where it came from."""
    if not config.settled:
        raise ValueError("resolve_arm needs a settled RunConfig: ablations.plan.settle(spec, config)")
    seed = config.seed if seed is None else seed
    variant = get_variant(spec.base)
    over = _split({**spec.base_overrides, **arm.overrides})
    model, model_over = resolve_model(spec, arm, config)
    seq_len = config.seq_len
    data_fields = {**variant.data, "vocab_size": model.vocab_size, "max_length": seq_len, "seed": 12345 + seed,
                   "text_column": config.text_column, "sentence_splitter": config.sentence_splitter}
    if config.quick:
        data_fields.update(dupe_factor=2, max_eval_examples=64, character_coverage=0)
    data_fields.update(over["data"])
    data = DataConfig(**data_fields)
    if data.sentence_task != "none" and not model.sentence_head:
        raise ValueError(f"arm {arm.name!r}: data.sentence_task={data.sentence_task!r} needs a sentence head; "
                         "set model.sentence_head=True or data.sentence_task='none'")
    budget = config.budget.fields()
    if "max_seconds" in budget:
        budget["max_seconds"] = budget["max_seconds"] / max(1, n_trained)
    lr, lr_source = rate if rate is not None else base_rate(model, config)
    if "lr" in over["train"]:
        lr_source = "pinned by the arm (train.lr)"
    train_fields = {"batch_size": config.batch_size, "lr": lr, "device": config.device, "seed": seed,
                    "checkpoint_every": 50, "log_every": 1, "eval_points": 8, "compile": config.compile,
                    "precision": config.precision, **budget,
                    **({"schedule": "wsd"} if config.ladder else {}), **over["train"]}
    # a FLOP budget's flops_per_step is measured in the run stage, once per configuration
    # (`ablations.run.arm.ArmTrainer.with_flops`), which then also derives what follows from it
    derived = tuple(k for k in ("curve_examples", "warmup_steps") if k not in over["train"])
    train_fields.setdefault("curve_examples", curve_examples(train_fields, seq_len))
    train = TrainConfig(**train_fields)
    if train.init_from:  # an HF-format source without transformers: one line now, not when the arm starts
        check_loadable(train.init_from, f"init_from {train.init_from} (an HF-format arm)")
    if config.ladder:
        train = _for_ladder(train, arm.name, seq_len, config)
    wrong = [f"{section}.{e}" for section, cfg in (("model", model), ("data", data), ("train", train))
             for e in cfg.type_errors()]
    if wrong:
        raise ValueError(f"arm {arm.name!r}: " + "; ".join(wrong))
    flat = {**{f"model.{k}": v for k, v in model.to_dict().items()},
            **{f"data.{k}": v for k, v in data.to_dict().items()},
            **{f"train.{k}": v for k, v in train.to_dict().items()}}
    return ResolvedArm(arm, spec.base, model, data, train, flat, _key(flat, config, corpus_fp), seed,
                       lr_source=lr_source, notes=size_notes(model, set(variant.model) | set(model_over), seq_len),
                       derived=derived)


# settings that change how a run is watched or stored, not what it learns
_BOOKKEEPING = ("train.checkpoint_every", "train.log_every", "train.eval_points", "train.curve_examples",
                "train.compile", "train.flops_per_step")


# an unset budget field as configurations wrote it before unset was None everywhere: keys
# of finished rows stay as they were (max_flops is a LATER_DEFAULT, left out when unset)
_UNSET_AS_WRITTEN = {"train.max_steps": 0, "train.max_tokens": 0, "train.max_seconds": 0.0}


def _key(flat: dict[str, Any], opts: RunConfig, corpus_fp: str) -> str:
    """The configuration's identity: finished rows and twins match on it. A field added
    later at its old behaviour's value (`LATER_DEFAULTS`) leaves old rows' keys as they were."""
    flat = {**flat, **{k: v for k, v in _UNSET_AS_WRITTEN.items() if flat.get(k) is None}}
    key_src = {k: v for k, v in _same_model(flat).items() if k not in _BOOKKEEPING
               and not (k.startswith("train.") and LATER_DEFAULTS.get(k[6:], object()) == v)}
    if opts.ladder:  # the rungs' budgets: a ladder is another unit than one run of the same config
        key_src["ladder"] = [opts.ladder, opts.ladder_ratio]
    return hashlib.sha1(json.dumps([key_src, corpus_fp], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _same_model(flat: dict[str, Any]) -> dict[str, Any]:
    """Configurations that build the same model are one run: sharing with one group per
    layer shares nothing (layer i uses group i), so `sharing` at micro's 4 groups, or at
    "L" groups at any size, trains as no sharing would, to the last digit."""
    if flat["model.sharing"] != "none" and flat["model.num_groups"] == flat["model.num_layers"]:
        flat = {**flat, "model.sharing": "none"}
    if flat.get("model.global_every", 1) > 1 and window_covers(flat.get("model.local_window", 128),
                                                               flat["data.max_length"]):
        # local layers whose window covers the sequence are global layers (the local theta aside)
        flat = {k: v for k, v in flat.items() if k not in ("model.global_every", "model.local_window")}
    return flat


def window_covers(local_window: int, seq_len: int) -> bool:
    """A window that reaches every token of the sequence: its layer is full attention."""
    return local_window // 2 >= seq_len - 1


def pair_eval_sets(units: list[ResolvedArm], base: dict[int, ResolvedArm]) -> None:
    """Arms that differ from their seed's base arm only in training-side data choices
    (TRAINING_ONLY: same tokenizer and documents) are scored on the base arm's held-out
    examples and masks, so that their losses are paired example by example."""
    for r in units:
        b = base.get(r.seed)
        same = b is not None and b.data.replace(**{k: getattr(r.data, k) for k in TRAINING_ONLY}) == r.data
        r.eval_data, r.eval_set = (b.data, "base") if same else (r.data, "own")


# The held-out curve (eval_points evaluations during training) may cost at most about a
# third of the training compute: its points together read no more tokens than training does,
# and a forward pass is about a third of a training step. At least 32 examples a point keep
# the per-example paired differences usable. Without the cap, the `attention` ablation
# (40,000 tokens at 1024 per example) spent 7x its training time on curve points.
CURVE_MIN_EXAMPLES = 32


def with_measured_flops(res: ResolvedArm, train: TrainConfig, flops_per_step: float, ladder: int,
                        ratio: float) -> TrainConfig:
    """The unit's TrainConfig once its step's FLOPs are measured: a FLOP budget's curve
    examples and a ladder's warm-up steps follow from them (unless the arm set them)."""
    train = train.replace(flops_per_step=train.flops_per_step or flops_per_step)
    if not train.max_flops:
        return train
    if "curve_examples" in res.derived:
        train = train.replace(curve_examples=curve_examples(train.to_dict(), res.data.max_length))
    if ladder and "warmup_steps" in res.derived and not train.warmup_steps:
        tokens_per_step = train.batch_size * train.grad_accum * res.data.max_length
        train = train.replace(warmup_steps=warmup_steps_for(train, tokens_per_step, ladder, ratio))
    return train


def curve_examples(train_fields: dict[str, Any], seq_len: int) -> int:
    """Examples per curve point for this budget (the TrainConfig default where the budget
    is wall-clock only, since its tokens are not known in advance)."""
    cap = TrainConfig.curve_examples
    per_step = train_fields["batch_size"] * train_fields.get("grad_accum", 1) * seq_len
    tokens = [train_fields.get("max_tokens") or 0, (train_fields.get("max_steps") or 0) * per_step]
    if train_fields.get("max_flops") and train_fields.get("flops_per_step"):
        tokens.append(math.ceil(train_fields["max_flops"] / train_fields["flops_per_step"]) * per_step)
    known = [t for t in tokens if t > 0]
    points = train_fields.get("eval_points") or 0
    if not known or not points:
        return cap
    return int(min(cap, max(CURVE_MIN_EXAMPLES, min(known) // (points * seq_len))))


def _for_ladder(train: TrainConfig, name: str, seq_len: int, opts: RunConfig) -> TrainConfig:
    """A ladder's unit trains wsd with a warm-up in steps (ablations.plan.ladder); under a
    FLOP budget the steps follow from the measured FLOPs, in the run stage."""
    if train.schedule != "wsd":
        raise ValueError(f"arm {name!r}: --ladder branches the rungs from one warmup-stable-decay run; "
                         f"train.schedule={train.schedule!r} cannot branch (drop the override or --ladder)")
    if train.max_flops and not train.flops_per_step:
        return train
    tokens_per_step = train.batch_size * train.grad_accum * seq_len
    return train.replace(warmup_steps=warmup_steps_for(train, tokens_per_step, opts.ladder, opts.ladder_ratio))
