"""`run`: an ablation (a catalogue name or a TOML file) through the stages, then its report.

The route of a run: the flags become one `RunConfig` (`ablations.cli.flags`); with
`--lr-search`, the search stage trains its points and writes the chosen rates into the run
directory (`ablations.run.lr_search`); `make_plan` settles the config against the spec and
resolves every (arm, seed) once, reading those rates; the runner trains every unit; the
report is rendered from the run directory alone.
"""
from __future__ import annotations

import argparse
import sys

from ablations.cli.console import console
from ablations.cli.errors import exit_code
from ablations.cli.flags import add_flags, from_args
from ablations.config import RunConfig

EPILOG = """examples:
  python -m ablations list
  python -m ablations show albert_reformer
  python -m ablations run albert_reformer                   # built-in corpus, CPU-sized budget
  python -m ablations run attention --corpus ../shared/data/kowiki --seq-len 2048 --time-budget 30m
  python -m ablations run my_ablation.toml --quick
  python -m ablations report runs/albert_reformer
  python -m ablations report runs/attention --x flops        # eval-loss curves against training FLOPs
  python -m ablations bench memory --variants bert,reformer --seq-lens 512,1024,2048
  python -m ablations data --corpus ../shared/data/kowiki --masking dynamic --json
  python -m ablations run albert_reformer --downstream korsts,question_pair --downstream-steps 300
  python -m ablations run objective --tokens 400000 --ladder 4       # each arm at 4 budgets: where curves cross
  python -m ablations export runs/albert_reformer bert --format hf --out exported/bert
  python -m ablations finetune runs/albert_reformer bert --task korsts --seeds 3
"""


def add_run(sub, fmt: dict) -> None:
    r = sub.add_parser("run", help="run an ablation (a name or a .toml file)", epilog=EPILOG, **fmt)
    r.add_argument("name", help="ablation name (see `list`) or path to a .toml spec")
    add_flags(r, RunConfig)
    r.set_defaults(fn=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ablations.report import render_report
    from ablations.run import run_ablation
    from ablations.rundir import BENCH, RESULTS
    from ablations.specs import get_ablation

    config = from_args(args, RunConfig)
    if config.downstream:  # every task read and checked before any pretraining starts
        from ablations.run.downstream import load_tasks

        load_tasks(config.downstream)
    summary = run_ablation(get_ablation(args.name), config, console)
    if (summary.out / RESULTS).is_file() or (summary.out / BENCH).is_file():
        render_report(summary.out, console)
    if args.debug:
        for log in summary.error_logs:
            print(f"--- {log}\n{log.read_text(encoding='utf-8')}", file=sys.stderr)
    return exit_code(summary.errors, f"{summary.out}/report.md (with the .jsonl, .csv and plots beside it)", console)
