"""The plan stage: the run's flags (`options`) settled against the ablation's budget
(`settings`), arms selected (`selection`), every (arm, seed) resolved to its configs
(`resolve`), ladder rungs (`ladder`); `build.make_plan` does all of it, once, before anything trains."""
from ablations.plan.build import Plan, Unit, make_plan
from ablations.plan.options import RunOptions, parse_duration
from ablations.plan.resolve import ResolvedArm, resolve_arm
from ablations.plan.settings import RunSettings, settle

__all__ = ["Plan", "ResolvedArm", "RunOptions", "RunSettings", "Unit", "make_plan", "parse_duration", "resolve_arm",
           "settle"]
