"""Which arms this process trains: `--arms a,b` and `--shard K/N`.

Several processes, GPUs or machines pointed at one run directory each take a disjoint
part of an ablation (arm i, counted from 0 in the spec's order, belongs to shard
i % N + 1); the leases and the locked results file do the rest. The selection never
changes what an arm *is*: every arm is still resolved (the base arm's held-out sets, a
time budget's split), only the training is restricted.
"""
from __future__ import annotations

from ablations.config import RunConfig, parse_arm_names, parse_shard
from ablations.specs import AblationSpec, Arm
from core.registry import unknown_name_error


def select_arms(spec: AblationSpec, opts: RunConfig) -> list[Arm]:
    """The spec's arms in order, restricted to --arms and to shard K of N."""
    names, shard = parse_arm_names(opts.arms), parse_shard(opts.shard)
    valid = [a.name for a in spec.arms]
    for name in names or ():
        if name not in valid:
            raise unknown_name_error(f"arm of ablation {spec.name!r} (--arms)", name, valid)
    return [a for i, a in enumerate(spec.arms)
            if (names is None or a.name in names) and (shard is None or i % shard[1] + 1 == shard[0])]


def is_partial(opts: RunConfig) -> bool:
    return opts.arms is not None or opts.shard is not None
