"""The built-in default corpus: docstrings of the Python standard library.

The main job must run on a fresh machine with no download. Every Python installation
carries a few megabytes of human-written English prose in its standard library's
docstrings. We read them with `ast` (never importing a module, which could have side
effects) from a fixed, sorted list of files, so the corpus is the same on every run of
the same Python version. Each module is one document; each docstring paragraph is a
paragraph of it. Lines that look like code (doctest prompts, indented blocks) are
dropped: they are not prose.
"""
from __future__ import annotations

import ast
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

from core.data.sentences import split_sentences

NAME = "built-in corpus: Python standard library docstrings"
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "ensurepip",
              "pydoc_data", "__pycache__", "dist-packages", "encodings", "config-3"}


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py")
                  if not any(part in _SKIP_DIRS or part.startswith("config-") for part in p.relative_to(root).parts))


def _paragraphs(doc: str) -> Iterator[str]:
    for block in doc.split("\n\n"):
        lines = [ln for ln in block.splitlines()]
        if not lines or any(ln.startswith((" ", "\t")) or ln.lstrip().startswith((">>>", "...", "$ "))
                            for ln in lines[1:]):
            continue
        text = " ".join(ln.strip() for ln in lines).strip()
        words = text.split()
        # prose: several words, mostly letters, ending like a sentence
        if len(words) >= 4 and text[-1] in ".!?:" and sum(c.isalpha() for c in text) > 0.6 * len(text):
            yield text


def iter_builtin_documents(split: Callable[[str], list[str]] = split_sentences) -> Iterator[list[str]]:
    for path in stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        sentences: list[str] = []
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    for para in _paragraphs(doc):
                        sentences.extend(split(para))
        # dedupe within a module (ast.walk revisits the module node) while keeping order
        sentences = list(dict.fromkeys(sentences))
        if len(sentences) >= 2:
            yield sentences


def builtin_fingerprint() -> str:
    import hashlib
    import sys

    h = hashlib.sha1(sys.version.encode())
    for p in stdlib_files():
        h.update(f"{p.name}|{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
