"""The stages of one run from Python, in order: the learning-rate search if asked (its own
stage, writing rates.json), the one plan, the runner. The CLI's `run` takes this route and
then renders the report (`ablations.report.render_report(summary.out)`)."""
from __future__ import annotations

from ablations.config import RunConfig, settle
from ablations.plan import make_plan
from ablations.run.lr_search import search_rates
from ablations.run.runner import RunSummary, run_plan
from ablations.specs import AblationSpec


def run_ablation(spec: AblationSpec, config: RunConfig, console=None) -> RunSummary:
    if spec.kind != "bench" and settle(spec, config).lr_search:  # a flag, or the ablation's default (`optimizer`)
        search_rates(spec, config, console)
    return run_plan(make_plan(spec, config), console)
