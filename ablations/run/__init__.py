"""The run stage: a plan's units trained, timed and kept.

    runner.py     the units of a plan: leases, twins, resume, rows (`run_plan`)
    arm.py        one unit trained into one row (and a ladder's rungs)
    launch.py     one unit in this process or on torchrun's ranks
    workers.py    --workers: helper processes on one machine
    timing.py     every arm's step timed side by side (speed.json)
    rows.py       a unit's row before training fills it
    bench.py      memory and speed against length, without training
    weights.py    kept weights: export, finetune and init_from of finished arms
    downstream.py fine-tuned scores for a unit's row
"""
from ablations.run.runner import Runner, RunSummary, run_ablation, run_plan

__all__ = ["RunSummary", "Runner", "run_ablation", "run_plan"]
