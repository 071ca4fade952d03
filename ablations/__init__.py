"""Named ablations, the runner and reports; the CLI is `python -m ablations`."""
from ablations.options import RunOptions
from ablations.runner import run_ablation
from ablations.specs import ABLATIONS, AblationSpec, Arm, get_ablation

__all__ = ["ABLATIONS", "AblationSpec", "Arm", "RunOptions", "get_ablation", "run_ablation"]
