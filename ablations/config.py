"""One run's configuration, from the flag to the row.

`RunConfig` is the source of `python -m ablations run`'s flags: each field with `arg(...)`
metadata is one flag, its help, its range and its default (`ablations.cli.flags` builds the
parser from the fields), and an ablation's `[defaults]` table (a TOML file's, or a catalogue
entry's `defaults` / `gpu_budget`) sets the fields marked `spec=True`. Adding a run flag is
adding one field.

A config is made twice over its life, as one type: as asked (a flag left out is None: "from
the ablation") and settled (`settle`: every shape and the budget filled in, with the
precedence flag, then `--quick`'s smoke-test shapes, then the ablation's budget, then
`DEFAULTS`). Every value, from a flag or a spec, gets the same range check, before any data
is built: a bad value is one line naming the option and its valid range, never a silent default.

The budget per arm is one `core.train.Budget` (`config.budget`); unset is None throughout.
"""
from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from core.registry import unknown_name_error
from core.train import Budget

# argparse groups of the run command; fields without one are the command's own options
BUDGET = "budget per arm (the first reached stops an arm)"
DOWNSTREAM = "downstream (fine-tune every finished arm; scores join its results row)"
DISTRIBUTED = "distributed (docs/distributed.md)"

# quick mode's smallest vocabulary; the runner raises it to fit the corpus's characters
# (Korean needs about 3,000 pieces for characters alone at SentencePiece's default coverage)
QUICK_VOCAB = 500
# --lr-search's grid: multiples of each arm's own base rate; and the part of the budget each
# search point trains (a rate chosen on a short budget is biased high, the short-horizon bias;
# docs/findings/2026-12-01-shared-recipe.md gives the measurement behind it). The grid stops at
# 2x because of that bias: on kowiki 4x won the 25% search for two masking arms and lost at the
# full budget (and left one seed of three at the unigram stage)
DEFAULT_GRID = (0.5, 1.0, 2.0)
DEFAULT_FRACTION = 0.25
# the settled value of a shape no flag, --quick or ablation set; lr None: each arm's rate
# follows its width (core.optim.lr_for_width)
DEFAULTS = {"size": "mini", "seq_len": 128, "batch_size": 16, "tokens": 60_000, "vocab_size": 8000, "lr": None,
            "long_seq_len": 2048}
QUICK = {"size": "tiny", "seq_len": 64, "batch_size": 4, "steps": 3, "vocab_size": QUICK_VOCAB, "long_seq_len": 128}
MIN_RUNGS = 3  # --ladder: two budgets give a line through two points; a crossing needs a curve
BUDGET_FLAGS = {"flops": "max_flops", "tokens": "max_tokens", "steps": "max_steps", "time_budget": "max_seconds"}


def arg(default: Any, help: str, *, low: float | None = None, what: str = "", choices: tuple | None = None,
        flag: str | None = None, group: str | None = None, spec: bool = False, parse: str | None = None,
        metavar: str | None = None) -> Any:
    """A run option: a field, one CLI flag (`flag`, default --NAME), its help, its lowest
    valid value (`low`, with `what` the unit named in the error) and its choices; `spec`:
    an ablation's defaults may set it; `parse`: how the flag's text becomes the value
    ("duration": 10m, 1h30m; "tasks": comma-separated downstream tasks)."""
    meta = {"help": help, "low": low, "what": what, "choices": choices, "flag": flag, "group": group,
            "spec": spec, "parse": parse, "metavar": metavar, "cli": True}
    return field(default=default, metadata=meta)


def internal(default: Any, low: float | None = None, what: str = "") -> Any:
    """A setting without a flag (set from Python, or derived)."""
    return field(default=default, metadata={"cli": False, "low": low, "what": what})


@dataclass(frozen=True)
class RunConfig:
    corpus: str | None = arg(None, "file, directory or glob (text, WikiExtractor, jsonl, .gz; ko_lm_dataformat, "
                                   "Parquet, datasets.save_to_disk); default: the built-in corpus (Python standard "
                                   "library docstrings)")
    size: str | None = arg(None, "tiny, micro, mini, small, medium, base, large (default: mini)", spec=True)
    budget_preset: str = arg("cpu", "the ablation's CPU budget (default) or the larger one at which its effect is "
                                    "expected to show (see `show NAME`); flags below override either",
                             flag="--budget", choices=("cpu", "gpu"), group=BUDGET)
    steps: int | None = arg(None, "optimizer steps per arm (>= 1)", low=1, what="optimizer steps per arm",
                            group=BUDGET, spec=True)
    tokens: int | None = arg(None, "training tokens (non-padding) per arm (>= 1)", low=1,
                             what="training tokens per arm", group=BUDGET, spec=True)
    time_budget: float | None = arg(None, "wall-clock for all arms together, split equally, e.g. 10m, 1h", low=1,
                                    what="seconds", group=BUDGET, parse="duration")
    flops: float | None = arg(None, "training FLOPs per arm, e.g. 3e12: every arm gets the same compute, counted "
                                    "per step by torch's FlopCounterMode on one measured step (not with "
                                    "--steps/--tokens)", low=1, what="training FLOPs per arm, measured", group=BUDGET)
    ladder: int = arg(0, "train every arm at K >= 3 budgets (the budget x ratio**-j), one row each, for about the "
                         "price of one run: a warmup-stable-decay run branched into K cooldowns", metavar="K",
                      group=BUDGET)
    ladder_ratio: float = arg(2.0, "each ladder budget over the previous one (default 2)", group=BUDGET)
    text_column: str = arg("text", "Parquet, datasets.save_to_disk and JSON-lines corpora: the column (field) "
                                   "holding the text (default text)")
    sentence_splitter: str = arg("regex", "how documents are cut into sentences: regex (punctuation, the default) "
                                          "or kss (Korean; pip install -e '.[kss]'); a cache built with one is never "
                                          "reused for the other", choices=("regex", "kss"))
    log_to: str = arg("none", "log training while it runs to tensorboard, wandb and/or mlflow (comma-separated, as "
                              "HF's report_to; 'all', 'none'): RUN_DIR/tb, RUN_DIR/wandb (offline unless WANDB_MODE), "
                              "RUN_DIR/mlruns; pip install -e '.[track]'")
    seq_len: int | None = arg(None, "tokens per example (default 128; the attention ablation 512)", low=8,
                              what="tokens per example", spec=True)
    batch_size: int | None = arg(None, "examples per optimizer step (default 16)", low=1, what="examples per step",
                                 spec=True)
    vocab_size: int | None = arg(None, "SentencePiece vocabulary (default 8000)", low=16,
                                 what="SentencePiece pieces", spec=True)
    lr: float | None = arg(None, "one peak learning rate for every arm (default: each arm's width rule, 1e-3 x 128 / "
                                 "hidden size); warm-up then linear decay", spec=True)
    lr_search: bool = arg(False, "each arm (first seed) at a grid of rates on part of the budget; every seed then "
                                 "trains at the rate with the lowest held-out loss (search points in "
                                 "RUN_DIR/lr-search/); on by default where the ablation says so (optimizer, "
                                 "batch_ramp, mask_schedule): --lr turns it off", spec=True)
    lr_grid: str | None = arg(None, "--lr-search's rates as multiples of each arm's own (default 0.5,1,2, or the "
                                    "ablation's)", spec=True)
    lr_search_fraction: float | None = arg(None, "the part of the budget each search point trains (default "
                                                 "0.25, or the ablation's)", spec=True)
    device: str = arg("auto", "auto, cpu or cuda")
    seed: int = arg(0, "the first seed (default 0)", low=0, what="the first seed")
    seeds: int = arg(1, "train every arm with seeds seed, seed+1, ... (default 1); a re-run adds the missing "
                        "(arm, seed) pairs only", low=1, what="seeds per arm")
    out: str | None = arg(None, "run directory (default runs/NAME); re-running resumes there")
    quick: bool = arg(False, "tiny models and a few steps: a smoke test of the pipeline")
    keep_checkpoints: bool = arg(False, "keep each finished arm's checkpoint")
    progress: bool = arg(True, "no progress bars", flag="--no-progress")
    compile: bool = arg(False, "torch.compile the models (eager fallback with a warning)")
    precision: str = arg("auto", "autocast precision: auto (bf16 on CUDA, fp32 on a CPU), bf16 or fp32",
                         choices=("auto", "fp32", "bf16"))
    downstream: tuple[str, ...] = arg((), "tasks, e.g. korsts,question_pair,klue-ner,klue-nli,korquad (../shared/data "
                                          "or $BERT_ABLATE_TASK_DATA), klue-ner:FILE, klue-nli:FILE, korquad:FILE or "
                                          "tsv:DIR:...",
                                      group=DOWNSTREAM, parse="tasks")
    downstream_steps: int = arg(300, "fine-tuning steps per task (default 300)", group=DOWNSTREAM)
    downstream_seeds: int = arg(1, "fine-tuning seeds per task (default 1)", group=DOWNSTREAM)
    arms: str | None = arg(None, "train only these arms, comma-separated (others may run elsewhere)",
                           group=DISTRIBUTED)
    shard: str | None = arg(None, "K/N: train only arm i (from 0, in the spec's order) with i %% N + 1 == K; N "
                                  "processes or machines on one run directory split the arms", group=DISTRIBUTED)
    workers: int = arg(1, "train N arms at once on this machine, each with 1/N of the CPU threads (small models on a "
                          "CPU finish sooner side by side); timing and the report stay in one process", low=1,
                       what="arm trainers on this machine", group=DISTRIBUTED)
    nproc_per_node: int = arg(1, "train each arm on N torchrun ranks (DDP; --batch-size is split over them)", low=1,
                              what="processes (torchrun ranks) per arm", group=DISTRIBUTED)
    # without a flag
    long_seq_len: int | None = internal(None, 0, "tokens (0 disables)")  # an extra saved-bytes figure at this length
    tokens_per_batch: int | None = field(default=None, metadata={"cli": False, "spec": True, "low": None})  # bench
    cache_dir: str | None = internal(None)
    memory_limit_bytes: int | None = internal(None, 1, "bytes")
    settled: bool = internal(False)                 # `settle` filled in every shape and the budget

    def __post_init__(self) -> None:
        for f in fields(self):
            check_low(f.name, getattr(self, f.name), flag_name(f))
        for name in ("budget_preset", "precision", "sentence_splitter"):
            f = FIELDS[name]
            if getattr(self, name) not in f.metadata["choices"]:
                raise unknown_name_error(flag_name(f), getattr(self, name), f.metadata["choices"])
        self._check_extras()
        parse_shard(self.shard)
        parse_arm_names(self.arms)
        self._check_combinations()
        self._check_lr()
        self._check_flops()

    def _check_extras(self) -> None:
        from core.train.tracking import parse_log_to

        parse_log_to(self.log_to)
        if not str(self.text_column).strip():
            raise ValueError("--text-column is empty: name the column that holds the text (default text)")
        if self.sentence_splitter == "kss":
            from core.extras import check

            check("kss", "--sentence-splitter kss")

    def _check_combinations(self) -> None:
        if self.workers > 1 and self.time_budget is not None:
            raise ValueError(f"--workers {self.workers} with --time-budget: arms trained side by side slow each "
                             "other unevenly, so equal seconds would not be equal compute; use --tokens or "
                             "--flops with --workers, or drop --workers")
        if self.workers > 1 and self.nproc_per_node > 1:
            raise ValueError(f"--workers {self.workers} and --nproc-per-node {self.nproc_per_node} both split this "
                             "machine: --workers trains several arms at once (small models on CPU cores), "
                             "--nproc-per-node one arm on several ranks (GPUs); choose one")
        if isinstance(self.ladder, bool) or self.ladder < 0:
            raise ValueError(f"--ladder must be a whole number >= 3 (budgets per arm), got {self.ladder}")
        if self.ladder and self.ladder < MIN_RUNGS:
            raise ValueError(f"--ladder {self.ladder}: a ladder needs at least {MIN_RUNGS} budgets per arm (K >= "
                             f"{MIN_RUNGS}) to show where curves cross; leave it out for one budget")
        if not self.ladder_ratio > 1:
            raise ValueError(f"--ladder-ratio must be > 1 (each rung's budget over the previous one's), got "
                             f"{self.ladder_ratio}")

    def _check_lr(self) -> None:
        if self.lr is not None and not (isinstance(self.lr, int | float) and not isinstance(self.lr, bool)
                                        and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0 (the peak learning rate, e.g. 1e-3), got {self.lr}")
        parse_grid(self.lr_grid)
        if self.lr_search_fraction is not None:
            check_fraction(self.lr_search_fraction)
        if self.lr_search and self.lr is not None and not self.settled:
            raise ValueError(f"--lr-search and --lr {self.lr:g}: --lr gives every arm one rate, the search finds "
                             "each arm its own; choose one (the search's grid multiplies each arm's width-rule rate)")

    def _check_flops(self) -> None:
        if self.flops is None:
            return
        if not math.isfinite(self.flops):
            raise ValueError(f"--flops must be a finite number of FLOPs, e.g. 3e12, got {self.flops}")
        clash = [flag for flag, value in (("--steps", self.steps), ("--tokens", self.tokens)) if value is not None]
        if clash and not self.settled:
            raise ValueError(f"--flops cannot be combined with {' or '.join(clash)}: a FLOP budget gives every "
                             "arm the same compute, a step or token budget the same data; choose one "
                             "(--time-budget may stand beside either)")

    @property
    def budget(self) -> Budget:
        """The budget per arm (settled: what every arm trains; as asked: the flags')."""
        return Budget(**{k: getattr(self, name) for name, k in BUDGET_FLAGS.items()})

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]

    def replace(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    def settled_json(self) -> dict[str, Any]:
        """The settled shapes and budget, for spec.json's `options` (the report reads them)."""
        return {"size": self.size, "seq_len": self.seq_len, "batch_size": self.batch_size,
                "budget": self.budget.fields(), "vocab_size": self.vocab_size, "lr": self.lr,
                "long_seq_len": self.long_seq_len}


FIELDS = {f.name: f for f in fields(RunConfig)}
# the keys an ablation's defaults (or a TOML [defaults] table) may set, and its gpu_budget
SPEC_KEYS = tuple(name for name, f in FIELDS.items() if f.metadata.get("spec"))


def flag_name(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_low(name: str, value: Any, shown: str) -> None:
    low = FIELDS[name].metadata.get("low")
    if low is not None and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                                  or value < low):
        raise ValueError(f"{shown} must be >= {low} ({FIELDS[name].metadata['what']}), got {value}")


def settle(spec, asked: RunConfig) -> RunConfig:
    """Every shape and the budget filled in (see the module docstring), checked as a flag is."""
    chosen = dict(spec.gpu_budget if asked.budget_preset == "gpu" and spec.gpu_budget else spec.defaults)
    chosen.pop("why", None)
    layer = QUICK if asked.quick else chosen  # --quick's small shapes win over an ablation's budget

    def pick(name: str) -> Any:
        value = getattr(asked, name)
        return value if value is not None else layer.get(name, chosen.get(name, DEFAULTS[name]))

    size = pick("size")
    from variants import SIZES

    if size not in SIZES:
        raise unknown_name_error("size", size, SIZES)
    shapes = {name: pick(name) for name in ("seq_len", "batch_size", "vocab_size", "lr", "long_seq_len")}
    for name in ("seq_len", "batch_size", "vocab_size"):
        _check_spec_value(name, shapes[name], spec.name)
    if shapes["lr"] is not None and (not isinstance(shapes["lr"], int | float) or not shapes["lr"] > 0):
        raise ValueError(f"{spec.name}: lr must be > 0, got {shapes['lr']!r}")
    budget = _budget(chosen, asked, spec.name)
    return asked.replace(size=size, **shapes, **{name: getattr(budget, k) for name, k in BUDGET_FLAGS.items()},
                         tokens_per_batch=chosen.get("tokens_per_batch"), **_search(chosen, asked, spec.name),
                         settled=True)


def _search(chosen: dict[str, Any], asked: RunConfig, where: str) -> dict[str, Any]:
    """--lr-search and its grid, where the ablation turns the search on by default (`optimizer`:
    its arms' best rates differ by orders of magnitude): a flag wins, and --lr (one rate for
    every arm) turns the ablation's search off."""
    on = chosen.get("lr_search", False)
    if not isinstance(on, bool):
        raise ValueError(f"{where}: lr_search must be true or false, got {on!r}")
    grid = asked.lr_grid if asked.lr_grid is not None else chosen.get("lr_grid")
    if grid is not None and not isinstance(grid, str):
        raise ValueError(f"{where}: lr_grid is a comma-separated string of multiples, e.g. \"0.5,1,2\"; got {grid!r}")
    fraction = asked.lr_search_fraction
    if fraction is None:
        fraction = chosen.get("lr_search_fraction", DEFAULT_FRACTION)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError(f"{where}: lr_search_fraction is a number in (0, 1], e.g. 0.5; got {fraction!r}")
        check_fraction(fraction)
    return {"lr_search": asked.lr_search or (on and asked.lr is None), "lr_grid": grid, "lr_search_fraction": fraction}


def _check_spec_value(name: str, value: Any, where: str) -> None:
    try:
        check_low(name, value, f"{where}: {name}")
    except ValueError:
        low, what = FIELDS[name].metadata["low"], FIELDS[name].metadata["what"]
        raise ValueError(f"{where}: {name} must be >= {low} ({what}), got {value!r}") from None


def _budget(chosen: dict[str, Any], asked: RunConfig, where: str) -> Budget:
    if asked.budget:
        return asked.budget
    if asked.quick:
        return Budget(max_steps=QUICK["steps"])
    given = {k: chosen[k] for k in ("tokens", "steps") if k in chosen} or {"tokens": DEFAULTS["tokens"]}
    for name, value in given.items():
        _check_spec_value(name, value, where)
    return Budget(max_tokens=given.get("tokens"), max_steps=given.get("steps"))


def default_of(name: str) -> Any:
    f = FIELDS[name]
    return f.default if f.default is not MISSING else None


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4); shards count from 1."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"--shard {text!r}: write K/N, e.g. --shard 1/2 (this process takes shard K of N)")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text}: K must be between 1 and N (got K={k}, N={n})")
    return k, n


def parse_arm_names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    if not names:
        raise ValueError("--arms is empty: give arm names separated by commas (see `python -m ablations show NAME`)")
    return names


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '600' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"cannot read duration {text!r}; use e.g. 90s, 10m or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def parse_grid(text: str | None) -> tuple[float, ...]:
    """'0.5,1,2' -> (0.5, 1.0, 2.0): multiples of each arm's base rate, at least 2, all > 0."""
    if text is None:
        return DEFAULT_GRID
    try:
        grid = tuple(sorted({float(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        raise ValueError(f"--lr-grid takes comma-separated multiples of each arm's rate, e.g. 0.5,1,2; got {text!r}") \
            from None
    if len(grid) < 2 or not all(math.isfinite(m) and m > 0 for m in grid):
        raise ValueError(f"--lr-grid needs at least two finite multiples > 0, e.g. 0.5,1,2; got {text!r}")
    return grid


def check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 1:
        raise ValueError(f"--lr-search-fraction is the part of the budget each search point trains, in (0, 1]; "
                         f"got {fraction}")
