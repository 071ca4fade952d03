"""The plan stage: the run's configuration (`config`: one `RunConfig` from the flag to the
row, settled against the ablation's budget), arms selected (`selection`), every (arm, seed)
resolved to its configs (`resolve`), ladder rungs (`ladder`); `build.make_plan` does all of
it, once, before anything trains."""
from ablations.config import RunConfig, parse_duration, settle
from ablations.plan.build import Plan, Unit, make_plan
from ablations.plan.resolve import ResolvedArm, resolve_arm

__all__ = ["Plan", "ResolvedArm", "RunConfig", "Unit", "make_plan", "parse_duration", "resolve_arm", "settle"]
