"""How the CLI fails: one line on stderr, an exit code a script can read.

Exit 0: every unit ended as a result (ok, oom, nan); 1: a unit ended in error (its line
names it; the run went on); 2: the command could not run (a bad flag, file or spec), said
in one line before anything was built where it could be known then; 130: interrupted.
"""
from __future__ import annotations

import sys

from core.errors import one_line as failure_line


def one_line(err: BaseException) -> str:
    """A failure as one line that names the file and the fix where it can. Errors the
    project raises for bad input (ValueError, FileNotFoundError, KeyError) carry their own
    message; anything else also names its type and where it was raised."""
    if isinstance(err, OSError) and err.strerror:
        where = f" {err.filename}" if err.filename else ""
        return f"{err.strerror}:{where}" + {
            PermissionError: " (not writable or readable by you; choose another path)",
            IsADirectoryError: " (a directory where a file belongs)",
            NotADirectoryError: " (a file where a directory belongs)",
        }.get(type(err), "")
    if isinstance(err, (ValueError, FileNotFoundError, KeyError)):
        return " ".join(str(err).split()) or type(err).__name__
    return f"{failure_line(err)} (run again with --debug for the traceback)"


def exit_code(errors: list[str], where: str, console) -> int:
    """Exit 0 when every unit ended as a result (ok, oom, nan), 1 when any ended in error."""
    if errors:
        for line in errors:
            print(f"error: {' '.join(line.split())}", file=sys.stderr)
        print(f"{len(errors)} failed; the others are in {where}", file=sys.stderr)
        return 1
    console.print(f"[bold green]done[/bold green]: {where}")
    return 0


def one_line_warning(message, category, *rest, **kw) -> str:
    """A warning is one line too (a skipped row, a fresh head), not a source line under it."""
    return f"warning: {' '.join(str(message).split())}\n"


def negative_values(argv: list[str], number_flags: tuple[str, ...]) -> list[str]:
    """`--flops -1e9` as `--flops=-1e9`: argparse takes "-1e9" for an option and says only
    "expected one argument"; joined, the value reaches the option's own check ("must be >= 1")."""
    out: list[str] = []
    for a in argv:
        if out and out[-1] in number_flags and a.startswith("-") and _is_number(a):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
