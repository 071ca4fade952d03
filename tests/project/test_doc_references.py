"""The documentation's references resolve.

A reference to the documentation from code (a comment, a docstring, a message) takes one
form: the page's path from the repository root, `README.md` or `docs/PAGE.md`, followed by
`#anchor` when it points at a heading, e.g. `docs/training.md#checkpoints-and-resume`.
Anchors follow GitHub's rule: the heading in lower case, punctuation dropped (letters,
digits, hyphens and underscores kept), each space a hyphen, and -1, -2, ... on a repeat.
Every such reference in code, and every relative link in README.md and docs/, must name a
page that exists and, with an anchor, a heading that page holds. A README heading named in
the old way (README followed by a quoted heading) is an error: nothing checks it."""
import re
from pathlib import Path

import pytest

from tests import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE_DIRS = ("core", "variants", "ablations", "benchmarks", "tests", ".ci")
CODE_SUFFIXES = {".py", ".sh", ".toml", ".cfg", ".ini", ""}  # .ci's scripts have no suffix
# a page and an optional anchor, not part of a longer path (../shared/docs/x.md is not ours)
REFERENCE = re.compile(r"(?<![\w./-])(README\.md|docs/[\w./-]+?\.md)(?:#([\w-]+))?")
# README followed by a quoted heading, or by the GPU check's section name: the old, unchecked form
OLD_REFERENCE = re.compile(r"""README(?!\.md)(?:'s)?\s*[:,]?\s*(?:\\?["“]|GPU check)""")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", flags=re.S | re.M)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (where '#' and '[x](y)' are not markdown)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", FENCE.sub("", page.read_text(encoding="utf-8")), flags=re.M):
        slug = github_anchor(m.group(1))
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def check(target: Path, anchor: str | None) -> str | None:
    """Why a reference to `target` (and `#anchor`) does not resolve, or None when it does."""
    if not target.exists():
        return "no such file"
    if anchor and (target.suffix != ".md" or anchor not in anchors(target)):
        return f"no heading with the anchor #{anchor} in {rel(target)}"
    return None


def code_files() -> list[Path]:
    files = [ROOT / "pyproject.toml"]
    for d in CODE_DIRS:
        files += [p for p in sorted((ROOT / d).rglob("*")) if p.is_file() and p.suffix in CODE_SUFFIXES
                  and "__pycache__" not in p.parts and p != Path(__file__).resolve()]
    return files


def test_anchor_rule():
    assert github_anchor("Checkpoints and resume") == "checkpoints-and-resume"
    assert github_anchor("Models and variants: `variants` and `core`") == "models-and-variants-variants-and-core"
    assert github_anchor("Is an idea worth its compute?") == "is-an-idea-worth-its-compute"
    assert github_anchor("Every flag of `run`, by group") == "every-flag-of-run-by-group"


def test_references_in_code_name_pages_and_headings_that_exist():
    bad = []
    for path in code_files():
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for m in REFERENCE.finditer(line):
                why = check(ROOT / m.group(1), m.group(2))
                if why:
                    bad.append(f"{rel(path)}:{n}: {m.group(0)}: {why}")
            if OLD_REFERENCE.search(line):
                bad.append(f"{rel(path)}:{n}: a README heading named in words; write docs/PAGE.md#anchor "
                           f"or README.md#anchor: {line.strip()}")
    assert not bad, "dangling or unchecked references to the documentation:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_resolve(page):
    bad = []
    for m in LINK.finditer(prose(page.read_text(encoding="utf-8"))):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        why = check((page.parent / path).resolve() if path else page, anchor or None)
        if why:
            bad.append(f"({target}): {why}")
    assert not bad, f"{rel(page)}: broken links:\n" + "\n".join(bad)


def test_readme_links_every_docs_page_and_the_index_every_finding():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"({rel(page)})" in readme, f"README.md does not link {rel(page)}"
    index = (ROOT / "docs" / "findings" / "README.md").read_text(encoding="utf-8")
    for finding in sorted((ROOT / "docs" / "findings").glob("*.md")):
        if finding.name != "README.md":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+\.md", finding.name), \
                f"{rel(finding)}: a finding is named YYYY-MM-DD-short-name.md"
            assert f"({finding.name})" in index, f"docs/findings/README.md does not list {finding.name}"


def test_the_readme_lists_every_ablation_with_its_arm_count():
    """A new ablation is reachable from the front door: its row in the README's table."""
    from ablations.specs import ABLATIONS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d+)(?: variants)? \|", text, flags=re.M))
    expected = {name: str(len(s.bench_variants) if s.kind == "bench" else len(s.arms)) for name, s in ABLATIONS.items()}
    assert rows == expected
