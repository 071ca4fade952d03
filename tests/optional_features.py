"""Every optional feature used without its extra, and the one line it must print (issue 30).

Each case is a CLI command that needs an optional package; without it the command must
stop before anything trains or is written, exit 2, and print exactly one line naming the
package and the extra. `tests/integration/test_optional_features.py` runs every case with the packages hidden;
CI runs this file in a venv that holds only `pip install -e .`, where they are missing:

    python tests/optional_features.py     # prints each feature's line; exit 1 on a mismatch

It imports nothing outside the base install (no pytest), so that it runs there.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
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
    line: str                   # exit 2: what `error: ` is followed by; exit 0: what stdout says ({tmp} as above)
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
    Case("export --format hf", ("export", "{tmp}/kept", "a", "--format", "hf", "--out", "{tmp}/exported"),
         ("transformers", "tokenizers"),
         f"exporting in the HF format (--format hf) needs {_hint('transformers', 'hf')}"),
    Case("export (--format auto)", ("export", "{tmp}/kept", "a", "--out", "{tmp}/exported"),
         ("transformers", "tokenizers"),
         "in native format: transformers is not installed (pip install -e '.[hf]' for the HF format)", exit_code=0),
    Case("finetune an HF-format directory", ("finetune", "{tmp}", "hf-dir", "--task", "korsts"), ("transformers",),
         f"loading {{tmp}}/hf-dir (an HF-format arm) needs {_hint('transformers', 'hf')}"),
    Case("init_from an HF-format directory", ("run", "{tmp}/warm.toml", "--quick", "--out", "{tmp}/run"),
         ("transformers",), f"init_from {{tmp}}/hf-dir (an HF-format arm) needs {_hint('transformers', 'hf')}"),
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
    hf = tmp / "hf-dir"  # what transformers' save_pretrained writes, as far as it is looked at first
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    (tmp / "warm.toml").write_text(f'name = "warm"\nbase = "roberta"\n[[arms]]\nname = "a"\n'
                                   f'overrides = {{ "train.init_from" = "{hf}" }}\n')
    _kept_run(tmp / "kept")
    (hf / "sentencepiece.model").write_bytes((tmp / "kept" / "tokenizer.model").read_bytes())


_KEPT: list[Path] = []  # one kept run per process, copied into each case's directory


def _kept_run(out: Path) -> None:
    if not _KEPT:
        _KEPT.append(Path(tempfile.mkdtemp(prefix="kept-run-")) / "kept")
        _make_kept_run(_KEPT[0])
    shutil.copytree(_KEPT[0], out)


def _make_kept_run(out: Path) -> None:
    """A run directory with one finished arm's kept weights (a tiny model, a tiny tokenizer)."""
    from itertools import islice

    from core.data import DataConfig
    from core.data.builtin_corpus import iter_builtin_documents
    from core.data.tokenizer import train_tokenizer
    from core.interop import save_native
    from variants import build_model

    sentences = [s for doc in islice(iter_builtin_documents(), 40) for s in doc]
    tok = train_tokenizer(lambda: iter(sentences), out / "tokenizer.model", DataConfig(vocab_size=200), "tiny")
    unit = out / "arms" / "a" / "seed-0"
    save_native(build_model("bert", size="tiny", vocab_size=200), tok.path, unit, {"source": {"arm": "a", "seed": 0}})
    (out / "spec.json").write_text(json.dumps({"ablation": "kept", "arms": ["a"]}))
    (out / "results.jsonl").write_text(json.dumps({"ablation": "kept", "arm": "a", "seed": 0, "status": "ok",
                                                   "weights_dir": "arms/a/seed-0"}) + "\n")


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
    """(exit code, what it said: stderr, or stdout for a case that succeeds) of the case's
    command, run in this process."""
    from ablations import __main__ as cli

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), hidden(case.hide if hide else ()):
        code = cli.main([expand(a, tmp) for a in case.argv])  # rich's console writes to sys.stdout as it is
    return code, err.getvalue() if case.exit_code else " ".join(out.getvalue().split())


def check(case: Case, tmp: Path, code: int, said: str) -> list[str]:
    """What is wrong with a case's outcome ([]: nothing)."""
    problems = []
    if code != case.exit_code:
        problems.append(f"exit {code}, not {case.exit_code}")
    want = expand(case.line, tmp)
    if case.exit_code == 0 and want not in said:
        problems.append(f"said {said!r}, not {want!r}")
    if case.exit_code and said != f"error: {want}\n":
        problems.append(f"printed {said!r}, not {'error: ' + want!r}")
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
