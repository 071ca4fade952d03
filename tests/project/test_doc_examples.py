"""Every ```python block of README.md and of every docs/**/*.md page runs, each page's blocks
in order in a scratch directory of its own (one test per page, so a failure names the page)."""
import re
import textwrap
from pathlib import Path

import pytest

from tests import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order (a block indented under a list item is dedented)."""
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [textwrap.dedent(b) for b in blocks]


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def test_the_pages_hold_their_examples():
    """The examples moved from the README into docs/ stay there (10 blocks) beside the README's own."""
    assert python_blocks(README), "README.md: the five-minute tour has no python example"
    assert sum(len(python_blocks(p)) for p in PAGES) >= 11
    for page in PAGES:  # an unclosed or mistyped fence would hide a block from the runner
        assert page.read_text(encoding="utf-8").count("```") % 2 == 0, f"{name(page)}: an unclosed ``` fence"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=name)
def test_python_examples_run(page, tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(cache_dir))
    for i, block in enumerate(python_blocks(page)):
        try:
            exec(compile(block, f"{name(page)} python block {i + 1}", "exec"), {"__name__": f"doc_{i}"})
        except Exception as err:  # name the page and the block in the failure
            pytest.fail(f"{name(page)} python block {i + 1} failed: {type(err).__name__}: {err}\n{block}")


def test_readme_names_the_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test,hf,track,corpora,kss]" && python -m pytest' in text
    assert "pip install -e . && python -m ablations run albert_reformer" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "torch==2.13.0" in ci and '-e ".[test,hf,track,corpora,kss]"' in ci
