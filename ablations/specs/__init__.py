"""What an ablation is: the schema (`schema`), the named catalogue (`catalogue`) and user
specs in TOML (`toml`). The bottom of `ablations`: it knows no run, plan or report."""
from ablations.specs.catalogue import ABLATIONS, CPU_BUDGET, get_ablation
from ablations.specs.schema import (
    DEFAULT_KEYS,
    METRICS,
    RUN_DIR_ARM,
    AblationSpec,
    Arm,
    Expectation,
    check_dotted,
    run_arm_ref,
    split_arm_seed,
    start_arm,
)
from ablations.specs.toml import load_toml

__all__ = ["ABLATIONS", "CPU_BUDGET", "DEFAULT_KEYS", "METRICS", "RUN_DIR_ARM", "AblationSpec", "Arm", "Expectation",
           "check_dotted", "get_ablation", "load_toml", "run_arm_ref", "split_arm_seed", "start_arm"]
