"""Every ```python block of the README runs, in order, in a scratch directory."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    blocks = python_blocks()
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), {"__name__": f"readme_{i}"})
        except Exception as err:  # name the block in the failure
            pytest.fail(f"README python block {i + 1} failed: {type(err).__name__}: {err}\n{block}")


def test_readme_names_the_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test,hf,track,corpora,kss]" && python -m pytest' in text
    assert "pip install -e . && python -m ablations run albert_reformer" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "torch==2.13.0" in ci and '-e ".[test,hf,track,corpora,kss]"' in ci
