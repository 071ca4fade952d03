"""`python -m ablations {list, show, run, report, bench, data, export, finetune}`: one module
per command (its parser and its body); this module builds the parser and runs a command,
turning any failure into one line (`ablations.cli.errors`)."""
from __future__ import annotations

import argparse
import sys
import warnings

from rich_argparse import RawDescriptionRichHelpFormatter

from ablations.cli.artefacts import add_export, add_finetune
from ablations.cli.bench import add_bench
from ablations.cli.catalogue import add_list, add_show
from ablations.cli.console import err_console
from ablations.cli.data import add_data
from ablations.cli.errors import negative_values, one_line, one_line_warning
from ablations.cli.flags import number_flags
from ablations.cli.report import add_report
from ablations.cli.run import EPILOG, add_run
from ablations.config import RunConfig

# flags of other commands that take a number (run's come from RunConfig)
OTHER_NUMBER_FLAGS = ("--tokens-per-batch", "--max-length", "--dupe-factor", "--eval-every")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ablations", description="Compare BERT-family ideas fairly: "
                                "parameters, memory, speed and loss, one row per arm.", epilog=EPILOG,
                                formatter_class=RawDescriptionRichHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure instead of one line")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = {"formatter_class": RawDescriptionRichHelpFormatter}
    add_list(sub, fmt)
    add_show(sub, fmt)
    add_run(sub, fmt)
    add_report(sub, fmt)
    add_bench(sub, fmt)
    add_export(sub, fmt)
    add_finetune(sub, fmt)
    add_data(sub, fmt)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(negative_values(argv, number_flags(RunConfig) + OTHER_NUMBER_FLAGS))
    shown = warnings.formatwarning
    if not args.debug:
        warnings.formatwarning = one_line_warning
    try:
        return args.fn(args) or 0
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: finished arms are saved in results.jsonl; run the same "
                          "command again to resume (an unfinished arm resumes from its last checkpoint)")
        return 130
    except Exception as err:  # noqa: BLE001 - every user-facing failure is one line
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)  # plain print: one line, never wrapped
        return 2
    finally:
        warnings.formatwarning = shown
