"""Every optional feature used without its extra, and the one line it must print (issue 30).

Each case is a CLI command that needs an optional package; without it the command must
stop before anything trains or is written, exit 2, and print exactly one line naming the
package and the extra. `tests/test_extras.py` runs every case with the packages hidden;
CI runs this file in a venv that holds only `pip install -e .`, where they are missing:

    python tests/optional_features.py     # prints each feature's line; exit 1 on a mismatch

It imports nothing outside the base install (no pytest), so that it runs there.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    feature: str
    argv: tuple[str, ...]       # {tmp} is the inputs' directory
    hide: tuple[str, ...]       # the modules the feature needs
    line: str                   # what `error: ` is followed by ({tmp} as above)
    exit_code: int = 2


def _hint(dist: str, extra: str) -> str:
    return f'the {dist} package: pip install -e ".[{extra}]"'


RUN = ("run", "objective", "--quick", "--no-progress", "--out", "{tmp}/run")
CASES = (
    Case("--log-to tensorboard", (*RUN, "--log-to", "tensorboard"), ("tensorboard",),
         f"--log-to tensorboard needs {_hint('tensorboard', 'track')}"),
    Case("--log-to wandb", (*RUN, "--log-to", "wandb"), ("wandb",), f"--log-to wandb needs {_hint('wandb', 'track')}"),
    Case("--log-to mlflow", (*RUN, "--log-to", "mlflow"), ("mlflow",),
         f"--log-to mlflow needs {_hint('mlflow-skinny', 'track')}"),
    Case("--sentence-splitter kss (run)", (*RUN, "--sentence-splitter", "kss"), ("kss",),
         f"--sentence-splitter kss needs {_hint('kss', 'kss')}"),
    Case("--sentence-splitter kss (data)", ("data", "--sentence-splitter", "kss", "--cache-dir", "{tmp}/cache"),
         ("kss",), f"--sentence-splitter kss needs {_hint('kss', 'kss')}"),
    Case("a Parquet corpus", (*RUN, "--corpus", "{tmp}/corpus.parquet"), ("pyarrow",),
         f"{{tmp}}/corpus.parquet needs {_hint('pyarrow', 'corpora')} to be read"),
    Case("a ko_lm_dataformat corpus (.jsonl.zst)", (*RUN, "--corpus", "{tmp}/corpus.jsonl.zst"), ("zstandard",),
         f"{{tmp}}/corpus.jsonl.zst needs {_hint('zstandard', 'corpora')} to be read"),
    Case("a datasets.save_to_disk corpus", (*RUN, "--corpus", "{tmp}/saved"), ("pyarrow",),
         f"{{tmp}}/saved/data-00000-of-00001.arrow needs {_hint('pyarrow', 'corpora')} to be read"),
)


def make_inputs(tmp: Path) -> None:
    """Files whose names ask for an optional reader: their bytes are never read, since
    the missing package is named first."""
    (tmp / "corpus.parquet").write_bytes(b"PAR1 not really")
    (tmp / "corpus.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd not really")
    saved = tmp / "saved"
    saved.mkdir()
    (saved / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (saved / "data-00000-of-00001.arrow").write_bytes(b"not really")


def expand(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


@contextlib.contextmanager
def hidden(modules: tuple[str, ...]):
    """The modules made unimportable (None in sys.modules), as if not installed."""
    saved = {m: sys.modules.get(m, ...) for m in modules}
    sys.modules.update(dict.fromkeys(modules))
    try:
        yield
    finally:
        for m, mod in saved.items():
            if mod is ...:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = mod


def run_case(case: Case, tmp: Path, hide: bool) -> tuple[int, str]:
    """(exit code, stderr) of the case's command, run in this process."""
    from ablations.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            hidden(case.hide if hide else ()):
        code = main([expand(a, tmp) for a in case.argv])
    return code, err.getvalue()


def check(case: Case, tmp: Path, code: int, stderr: str) -> list[str]:
    """What is wrong with a case's outcome ([]: nothing)."""
    want = f"error: {expand(case.line, tmp)}\n"
    problems = []
    if code != case.exit_code:
        problems.append(f"exit {code}, not {case.exit_code}")
    if stderr != want:
        problems.append(f"printed {stderr!r}, not {want!r}")
    if (tmp / "run").exists():
        problems.append("the run directory was created: the check came too late")
    return problems


def main() -> int:
    sys.path.insert(0, str(ROOT))
    failed = 0
    for case in CASES:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            make_inputs(tmp)
            code, stderr = run_case(case, tmp, hide=False)
            problems = check(case, tmp, code, stderr)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {case.feature}: {stderr.strip()}"
              + (f"  <- {'; '.join(problems)}" if problems else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
