"""The layout's rules, enforced: import contracts (import-linter) and lint (ruff).

A broken contract or a lint finding fails the README's one test command, not only CI."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def test_a_broken_contract_is_caught(tmp_path):
    """The contracts are live: a model block that imports the trainer breaks one."""
    pkg = tmp_path / "core"
    shutil.copytree(ROOT / "core", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("variants", "ablations"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    heads = pkg / "model" / "heads.py"
    heads.write_text(heads.read_text() + "\nfrom core.train import Trainer  # noqa: E402,F401\n")
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "core.model.heads -> core.train" in proc.stdout


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
