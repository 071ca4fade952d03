"""Run options: the CLI's flags, each checked before anything is built (`plan.settings`
resolves them against an ablation's budget)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ablations.plan.ladder import check_ladder
from core.registry import unknown_name_error

# quick mode's smallest vocabulary; the runner raises it to fit the corpus's characters
# (Korean needs about 3,000 pieces for characters alone at SentencePiece's default coverage)
QUICK_VOCAB = 500
# --lr-search's grid: multiples of each arm's own base rate; and the part of the budget each
# search point trains (a rate chosen on a short budget is biased high, the short-horizon bias;
# README "Each arm at its own best learning rate" gives the measurement behind it). The grid
# stops at 2x because of that bias: on kowiki 4x won the 25% search for two masking arms and
# lost at the full budget (and left one seed of three at the unigram stage)
DEFAULT_GRID = (0.5, 1.0, 2.0)
DEFAULT_FRACTION = 0.25
# (lowest valid value, what it is) for every numeric option; None means "not set"
LIMITS: dict[str, tuple[float, str]] = {
    "steps": (1, "optimizer steps per arm"), "tokens": (1, "training tokens per arm"),
    "time_budget": (1, "seconds"), "seq_len": (8, "tokens per example"), "batch_size": (1, "examples per step"),
    "vocab_size": (16, "SentencePiece pieces"), "seeds": (1, "seeds per arm"), "seed": (0, "the first seed"),
    "long_seq_len": (0, "tokens (0 disables)"), "memory_limit_bytes": (1, "bytes"),
    "nproc_per_node": (1, "processes (torchrun ranks) per arm"), "workers": (1, "arm trainers on this machine"),
    "flops": (1, "training FLOPs per arm, measured"),
}


@dataclass
class RunOptions:
    corpus: str | None = None
    size: str | None = None
    steps: int | None = None
    tokens: int | None = None
    time_budget: float | None = None  # seconds for all trained arms together, split equally
    seq_len: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    seed: int = 0                     # seed k of a run is seed + k, the same for every arm
    seeds: int = 1
    out: str | None = None
    quick: bool = False
    vocab_size: int | None = None
    lr: float | None = None
    long_seq_len: int | None = None  # extra saved-bytes figure at a long length; 0 disables
    keep_checkpoints: bool = False
    cache_dir: str | None = None
    progress: bool = True
    memory_limit_bytes: int | None = None
    budget: str = "cpu"               # cpu: the ablation's defaults; gpu: its gpu_budget
    compile: bool = False             # torch.compile every model (train and speed measurement)
    precision: str = "auto"           # autocast: auto (bf16 on CUDA, fp32 on a CPU), bf16 or fp32
    log_to: str = "none"              # trackers while training: tensorboard, wandb, mlflow (core.train.tracking)
    text_column: str = "text"         # Parquet / datasets / JSON lines: the column holding the text
    sentence_splitter: str = "regex"  # regex | kss
    downstream: tuple[str, ...] = ()   # tasks to fine-tune every ok arm on (ablations.downstream)
    downstream_steps: int = 300
    downstream_seeds: int = 1
    arms: str | None = None           # "a,b": train only these arms (ablations.plan.selection)
    shard: str | None = None          # "K/N": train only arm i with i % N + 1 == K
    nproc_per_node: int = 1           # > 1: each arm runs under torchrun on this many ranks
    workers: int = 1                  # arms trained at once on this machine's cores (ablations.run.runner)
    flops: float | None = None        # training FLOPs per arm (measured per step); excludes steps/tokens
    ladder: int = 0                   # K >= 3: every arm at K budgets, branched from one wsd run (ablations.plan.ladder)
    ladder_ratio: float = 2.0         # each rung's budget over the previous one's
    lr_search: bool = False           # each arm at its own best rate from a grid (ablations.plan.lr_search)
    lr_grid: str | None = None        # multiples of each arm's base rate, e.g. "0.5,1,2"
    lr_search_fraction: float = DEFAULT_FRACTION  # the part of the budget each search point trains

    def __post_init__(self) -> None:
        """Every number is checked here, before any data is built: a bad value is one line
        naming the option and its valid range, never a silent default."""
        for name, (low, what) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < low):
                raise ValueError(f"--{name.replace('_', '-')} must be >= {low} ({what}), got {value}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise unknown_name_error("--precision", self.precision, ("auto", "fp32", "bf16"))
        if self.budget not in ("cpu", "gpu"):
            raise unknown_name_error("--budget", self.budget, ("cpu", "gpu"))
        from core.train.tracking import parse_log_to

        parse_log_to(self.log_to)
        if not str(self.text_column).strip():
            raise ValueError("--text-column is empty: name the column that holds the text (default text)")
        if self.sentence_splitter not in ("regex", "kss"):
            raise unknown_name_error("--sentence-splitter", self.sentence_splitter, ("regex", "kss"))
        if self.sentence_splitter == "kss":
            from core.extras import check

            check("kss", "--sentence-splitter kss")
        parse_shard(self.shard)
        parse_arm_names(self.arms)
        if self.workers > 1 and self.time_budget is not None:
            raise ValueError(f"--workers {self.workers} with --time-budget: arms trained side by side slow each "
                             "other unevenly, so equal seconds would not be equal compute; use --tokens or "
                             "--flops with --workers, or drop --workers")
        if self.workers > 1 and self.nproc_per_node > 1:
            raise ValueError(f"--workers {self.workers} and --nproc-per-node {self.nproc_per_node} both split this "
                             "machine: --workers trains several arms at once (small models on CPU cores), "
                             "--nproc-per-node one arm on several ranks (GPUs); choose one")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0 (the peak learning rate, e.g. 1e-3), got {self.lr}")
        if isinstance(self.ladder, bool) or self.ladder < 0:
            raise ValueError(f"--ladder must be a whole number >= 3 (budgets per arm), got {self.ladder}")
        check_ladder(self.ladder, self.ladder_ratio)
        self._check_lr_search()
        self._check_flops()

    def _check_lr_search(self) -> None:
        parse_grid(self.lr_grid)
        check_fraction(self.lr_search_fraction)
        if self.lr_search and self.lr is not None:
            raise ValueError(f"--lr-search and --lr {self.lr:g}: --lr gives every arm one rate, the search finds "
                             "each arm its own; choose one (the search's grid multiplies each arm's width-rule rate)")

    def _check_flops(self) -> None:
        if self.flops is None:
            return
        if not math.isfinite(self.flops):
            raise ValueError(f"--flops must be a finite number of FLOPs, e.g. 3e12, got {self.flops}")
        clash = [flag for flag, value in (("--steps", self.steps), ("--tokens", self.tokens)) if value is not None]
        if clash:
            raise ValueError(f"--flops cannot be combined with {' or '.join(clash)}: a FLOP budget gives every "
                             "arm the same compute, a step or token budget the same data; choose one "
                             "(--time-budget may stand beside either)")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]


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
