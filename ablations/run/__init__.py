"""The run stage: a plan's units trained, timed and kept.

    stages.py     the stages of one run from Python: search, plan, runner (`run_ablation`)
    lr_search.py  --lr-search, its own stage before the plan: search points, rates.json
    runner.py     the units of a plan: leases, twins, resume, rows (`run_plan`)
    ladder.py     --ladder: a unit's K rungs, branched from one stable run
    arm.py        one unit trained into one row (and a ladder's rungs)
    launch.py     one unit in this process or on torchrun's ranks
    workers.py    --workers: helper processes on one machine
    timing.py     every arm's step timed side by side (speed.json)
    rows.py       a unit's row before training fills it
    failure.py    a failed step's traceback in error.log
    bench.py      memory and speed against length, without training
    weights.py    kept weights: export, finetune and init_from of finished arms
    downstream.py fine-tuned scores for a unit's row
"""
from ablations.run.lr_search import search_rates
from ablations.run.runner import Runner, RunSummary, run_plan
from ablations.run.stages import run_ablation

__all__ = ["RunSummary", "Runner", "run_ablation", "run_plan", "search_rates"]
