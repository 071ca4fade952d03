"""The layout's rules, enforced: import contracts (import-linter) and lint (ruff).

A broken contract or a lint finding fails the README's one test command, not only CI."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e \".[test]\"")
    return found


def test_import_contracts_hold():
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_ruff_finds_nothing():
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _lint_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the project where `module` (a path) gained `line`."""
    for name in ("core", "variants", "ablations"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402,F401\n")
    return subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": ""})


def test_a_broken_contract_is_caught(tmp_path):
    """The contracts are live: a model block that imports the trainer breaks one."""
    proc = _lint_with(tmp_path, "core/model/heads.py", "from core.train import Trainer")
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "core.model.heads -> core.train" in proc.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("ablations/analysis/costs.py", "import torch", "ablations.analysis.costs -> torch"),
    ("ablations/report/tables.py", "from ablations.specs import ABLATIONS", "ablations.report.tables -> ablations.specs"),
    ("ablations/plan/resolve.py", "from ablations.analysis import verdicts", "ablations.plan.resolve -> ablations.analysis"),
])
def test_the_stages_of_a_run_are_enforced(tmp_path, module, line, broken):
    """A new module falls under a rule by where it is placed: analysis stays pure, the report
    reads only the run directory, and siblings of one stage do not import each other."""
    proc = _lint_with(tmp_path, module, line)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout
    assert broken in proc.stdout, proc.stdout[-2000:]


def test_listing_ablations_does_not_import_torch():
    """`python -m ablations list` and `show` start in well under a second: no torch on their path."""
    code = ("import sys, runpy; sys.argv = ['ablations', 'list']\n"
            "try:\n    runpy.run_module('ablations', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stderr.strip().endswith("NO-TORCH"), proc.stderr[-2000:]


def test_no_module_imports_one_that_imports_it_back():
    """No cycles between modules of core/ or ablations/ (the runner/report circle is gone)."""
    import grimp

    graph = grimp.build_graph("core", "variants", "ablations", cache_dir=None)
    cycles = []
    for mod in sorted(graph.modules):
        for other in graph.find_modules_directly_imported_by(mod):
            if mod in graph.find_modules_directly_imported_by(other):
                cycles.append((mod, other))
    # a package's __init__ re-exporting its own submodules is not a cycle between modules
    cycles = [(a, b) for a, b in cycles if not (b.startswith(a + ".") or a.startswith(b + "."))]
    assert not cycles, cycles
