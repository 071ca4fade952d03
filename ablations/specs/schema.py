"""The schema of an ablation: a base variant plus arms of dotted overrides.

An arm names exactly the keys it changes ("model.attention", "data.sentence_task",
"train.lr"), relative to the ablation's base, and optionally the arm it should be
compared with (`compare_to`) to show one component's marginal effect. Users write the
same structure in TOML (`ablations.specs.toml`).

`expectations` are the papers' claimed directions; the report checks each one against
the measured figures and says plainly whether this run reproduced it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ablations.config import SPEC_KEYS
from core.registry import unknown_name_error

SECTIONS = ("model", "data", "train")
# the run options an ablation's `defaults` (or a TOML [defaults] table) may set: the fields of
# the run configuration marked `spec=True`
DEFAULT_KEYS = SPEC_KEYS
METRICS = ("params_unique", "params_total", "tokens_per_s", "peak_mem_bytes", "saved_bytes",
           "saved_bytes_long", "optimizer_state_bytes", "eval_mlm_loss", "eval_mlm_acc", "eval_nsp_acc",
           "eval_sop_acc", "wall_s")
DIRECTIONS = ("lower", "higher", "similar", "not-higher", "not-lower")
CHANCE = "chance"   # an expectation's `versus`: a sentence head's chance level (50% or the majority share)
NOISY_METRICS = ("eval_mlm_loss", "eval_mlm_acc", "eval_nsp_acc", "eval_sop_acc")
# `train.init_from = "RUN_DIR/ARM"`: warm-start from ARM of the same run, same seed (the runner
# resolves it when the arm starts: `ablations.run.weights.with_init_from`)
RUN_DIR_ARM = "RUN_DIR/"


def split_arm_seed(name: str, seed: int | None = None) -> tuple[str, int | None]:
    """'bert@2' -> ('bert', 2): an arm named with one of its seeds; a `seed` given beside it must agree."""
    arm, at, k = name.rpartition("@")
    if not at or not k.isdigit():
        return name, seed
    if seed is not None and seed != int(k):
        raise ValueError(f"{name!r} names seed {k} but --seed says {seed}; give one of them")
    return arm, int(k)


def run_arm_ref(init_from: object) -> tuple[str, int | None] | None:
    """`"RUN_DIR/ARM"` -> (ARM, None), `"RUN_DIR/ARM@K"` -> (ARM, K): a warm start from another
    arm of the same run; None for any other value (an exported directory, or none)."""
    if isinstance(init_from, str) and init_from.startswith(RUN_DIR_ARM):
        return split_arm_seed(init_from[len(RUN_DIR_ARM):])
    return None


def start_arm(arm: Arm) -> str | None:
    """The arm of this run that `arm` warm-starts from, if any."""
    ref = run_arm_ref(arm.overrides.get("train.init_from"))
    return ref[0] if ref else None


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)   # dotted keys, relative to the base
    description: str = ""
    compare_to: str | None = None                                # default: the base arm
    component: str | None = None                                 # what this arm adds or removes


@dataclass(frozen=True)
class Expectation:
    """`arm`'s `metric` should be `direction` ("lower"/"higher") than its comparison arm's,
    by at least `factor` (a ratio, e.g. 0.5 = at most half) where given. "similar" claims no
    difference (RoBERTa Table 1's dynamic masking): it holds while the difference stays
    within noise, and the report gives the noise, since a wide one says little.
    "not-higher" ("not-lower") claims no worse: "costs little loss", "30% masking is no
    worse than 15%"; only a difference beyond noise the wrong way contradicts it, so an arm
    that does better does not count against the claim as it would against "similar".
    `versus=CHANCE` compares a sentence head's accuracy with chance: 50%, or the held-out
    set's majority share where the rows record a larger one."""
    claim: str
    arm: str
    metric: str
    direction: str
    factor: float | None = None
    versus: str | None = None  # default: the arm's compare_to
    source: str = ""


@dataclass(frozen=True)
class AblationSpec:
    name: str
    description: str
    base: str                                        # variant name
    arms: tuple[Arm, ...]
    base_overrides: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)   # the CPU budget: size, seq_len, batch_size, tokens...
    # the budget at which the effect is expected to show (estimated from the papers'
    # curves; `run NAME --budget gpu` uses it); same keys as defaults, plus "why"
    gpu_budget: Mapping[str, Any] = field(default_factory=dict)
    expectations: tuple[Expectation, ...] = ()
    kind: str = "train"                              # train | bench (no training: seq_scaling)
    bench_variants: tuple[str, ...] = ()
    bench_seq_lens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"ablation {self.name!r}: arm names repeat: {names}")
        for arm in self.arms:
            check_dotted(arm.overrides, f"arm {arm.name!r}")
            if arm.compare_to is not None and arm.compare_to not in names:
                raise unknown_name_error(f"compare_to arm of {arm.name!r}", arm.compare_to, names)
            start, before = start_arm(arm), names[:names.index(arm.name)]
            if start is not None and start not in before:
                raise ValueError(f"ablation {self.name!r}: arm {arm.name!r} warm-starts from {RUN_DIR_ARM}{start}, "
                                 "which must name an arm listed before it (it trains first, seed by seed); "
                                 f"the arms before it: {', '.join(before) or 'none'}")
        check_dotted(self.base_overrides, "base_overrides")
        for key in self.defaults:
            if key not in DEFAULT_KEYS:
                raise unknown_name_error(f"key in the defaults of ablation {self.name!r}", key, DEFAULT_KEYS)
        for key in self.gpu_budget:
            if key not in (*DEFAULT_KEYS, "why"):
                raise unknown_name_error(f"key in the gpu_budget of ablation {self.name!r}", key, DEFAULT_KEYS)
        for e in self.expectations:
            if e.arm not in names:
                raise unknown_name_error("expectation arm", e.arm, names)
            if e.metric not in METRICS:
                raise unknown_name_error("expectation metric", e.metric, METRICS)
            if e.direction not in DIRECTIONS:
                raise unknown_name_error(f"direction of the expectation on {e.arm!r}", e.direction, DIRECTIONS)
            if e.direction in ("similar", "not-higher", "not-lower") and e.metric not in NOISY_METRICS:
                raise ValueError(f"ablation {self.name!r}: a {e.direction!r} expectation needs a noisy metric "
                                 f"({', '.join(NOISY_METRICS)}); {e.metric!r} is exact: use lower/higher")
            if e.versus == CHANCE:
                if e.metric not in ("eval_nsp_acc", "eval_sop_acc") or e.direction != "higher":
                    raise ValueError(f"ablation {self.name!r}: versus='chance' is for a sentence head being "
                                     "above chance: metric eval_nsp_acc or eval_sop_acc, direction 'higher'")
            elif e.versus is not None and e.versus not in names:
                raise unknown_name_error(f"versus arm of the expectation on {e.arm!r}", e.versus, [*names, CHANCE])

    @property
    def base_arm(self) -> Arm:
        return self.arms[0]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise unknown_name_error(f"arm of {self.name}", name, [a.name for a in self.arms])

    def reference_of(self, arm: Arm) -> Arm | None:
        if arm is self.base_arm:
            return None
        return self.arm(arm.compare_to) if arm.compare_to else self.base_arm

    def to_json(self) -> dict[str, Any]:
        """What a report needs of the spec, written into the run directory's spec.json, so
        that the report reads the run directory alone (a copied or older run renders the
        same). Each expectation names the arm it is compared with (`versus` resolved)."""
        expectations = []
        for e in self.expectations:
            ref = self.reference_of(self.arm(e.arm))
            expectations.append({**asdict(e), "versus": e.versus or (ref.name if ref else None)})
        return {"ablation": self.name, "description": self.description, "base": self.base,
                "arms": [a.name for a in self.arms],
                "gpu_budget": dict(self.gpu_budget), "expectations": expectations}


def check_dotted(overrides: Mapping[str, Any], where: str) -> None:
    from core.data import DataConfig
    from core.model import ModelConfig
    from core.train import TrainConfig

    classes = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
    for key in overrides:
        section, _, field_name = key.partition(".")
        if section not in classes or not field_name:
            raise ValueError(f"{where}: override key {key!r} must be 'model.<field>', 'data.<field>' "
                             "or 'train.<field>'")
        if field_name not in classes[section].field_names():
            raise unknown_name_error(f"{section} field in {where}", field_name, classes[section].field_names())


