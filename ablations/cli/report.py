"""`report`: re-render a run directory's report.md, results.csv and plots from its files alone."""
from __future__ import annotations

import argparse

from ablations.cli.console import console


def add_report(sub, fmt: dict) -> None:
    rep = sub.add_parser("report", help="re-render report.md, results.csv and plots from a run directory", **fmt)
    rep.add_argument("dir")
    rep.add_argument("--x", choices=["tokens", "flops", "seconds"], default="tokens",
                     help="the x axis of the held-out loss curves (eval_loss_vs_X.png; default tokens)")
    rep.set_defaults(fn=run_report)


def run_report(args: argparse.Namespace) -> None:
    from ablations.report import render_report

    render_report(args.dir, console, x=args.x)
