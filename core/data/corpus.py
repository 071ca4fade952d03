"""Corpus readers: plain text, WikiExtractor, JSON lines; files, directories, globs, gzip.

Everything streams: a document is yielded as soon as it is complete, so a corpus larger
than memory is never loaded whole. A document is a list of sentences.

Bad bytes do not stop a run: a line that is not valid UTF-8 is skipped and counted
(`CorpusReport.skipped_lines`, with the first place it happened), because one broken
line in a 10 GB dump should not cost a day. A file in which *no* line decodes is an
error that names the file. A WikiExtractor document without its `</doc>` (a dump cut
short, or a hand-edited file) is kept: the next `<doc` or the end of the file closes it,
and it is counted (`unclosed_docs`, with the first one's place), never dropped silently.
"""
from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.data.config import CorpusError
from core.data.formats import EXTRA_FORMATS, ReadOptions, dataset_dir_files, detect_extra, read_extra

FORMATS = ("auto", "text", "wikiextractor", "jsonl", *EXTRA_FORMATS)


@dataclass
class CorpusReport:
    files: int = 0
    documents: int = 0
    sentences: int = 0
    skipped_lines: int = 0
    first_skipped: str = ""      # "path:line" of the first skipped line
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    unclosed_docs: int = 0       # WikiExtractor documents without </doc>, kept
    first_unclosed: str = ""     # "path:line" of the first one's <doc tag
    longest_line: int = 0        # bytes: SentencePiece drops sentences longer than its limit
    longest_at: str = ""         # "path:line" of the longest line

    def unclosed(self, path: Path, lineno: int) -> None:
        self.unclosed_docs += 1
        if not self.first_unclosed:
            self.first_unclosed = f"{path}:{lineno}"

    def skip(self, path: Path, lineno: int, reason: str) -> None:
        self.skipped_lines += 1
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
        if not self.first_skipped:
            self.first_skipped = f"{path}:{lineno} ({reason})"


def resolve_files(spec: str | os.PathLike) -> list[Path]:
    """A file, a directory (recursively, hidden files skipped) or a glob pattern."""
    spec = str(spec)
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir() and (arrow := dataset_dir_files(path)) is not None:
        return arrow  # a datasets.save_to_disk directory: its Arrow files
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise CorpusError(f"corpus directory {spec} contains no files")
        return files
    if any(c in spec for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise CorpusError(f"corpus pattern {spec!r} matches no files")
        return files
    raise CorpusError(f"corpus file not found: {spec} (give a file, a directory or a glob pattern)")


HASHED_END = 1 << 20  # bytes hashed at each end of a file (all of one up to twice this)


def _content_hash(path: Path, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        if size <= 2 * HASHED_END:
            h.update(fh.read())
        else:
            h.update(fh.read(HASHED_END))
            fh.seek(size - HASHED_END)
            h.update(fh.read(HASHED_END))
    return h.hexdigest()


def fingerprint(files: list[Path]) -> str:
    """Identity of a corpus for caching: each file's name (relative to the corpus: it sets
    the order and, by suffix, the format), size and content hash.

    Content, not modification times: an edit that keeps the size and mtime (`touch -d`) is
    seen, and a corpus copied or moved elsewhere (new mtimes, same bytes) keeps its caches
    and finished runs. Files larger than 2 MiB are hashed at both ends (a MiB each): a
    single 10 GB dump costs milliseconds, and an edit only in the middle of such a file that
    keeps its size is the one change this misses. Smaller files are read whole, so a corpus of
    WikiExtractor's 1 MB files is read once per start (12 ms for the 10 MB kowiki sample,
    about 1.5 s per GB at this machine's 0.7 GB/s SHA-1, from the page cache)."""
    paths = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path()
    h = hashlib.sha1(b"corpus v2\n")
    for p in paths:
        size = p.stat().st_size
        h.update(f"{p.relative_to(root).as_posix()}|{size}|{_content_hash(p, size)}\n".encode())
    return h.hexdigest()[:16]


_BOMS = (b"\xff\xfe", b"\xfe\xff")


def utf16_kind(head: bytes) -> str | None:
    """'UTF-16' (a byte-order mark), 'UTF-16LE' or 'UTF-16BE' (no mark: every ASCII character
    puts a NUL byte on the same side of its pair, and the text decodes to printable
    characters), or None. Binary data has NULs on both sides, or does not read as text."""
    if head[:2] in _BOMS:
        return "UTF-16"
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if even + odd < 4 or min(even, odd) > (even + odd) // 20:
        return None
    kind = "UTF-16LE" if odd > even else "UTF-16BE"
    try:  # an incremental decoder: a character cut at the end of `head` is no error
        text = codecs.getincrementaldecoder(kind.lower())().decode(head)
    except UnicodeDecodeError:
        return None
    readable = sum(ch.isprintable() or ch.isspace() for ch in text)
    return kind if readable >= 0.95 * len(text) else None


def _open_lines(path: Path) -> Iterator[bytes]:
    """Raw lines; UTF-16 and binary files, and a truncated or corrupt gzip file, are named
    with the fix, not decoded into nonsense or a deep traceback."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            kind = utf16_kind(fh.read(8192))
            if kind:
                raise CorpusError(f"{path} is {kind} text, not UTF-8; convert it with "
                                  f"`iconv -f {kind} -t UTF-8 {path} > {path}.utf8` and use the .utf8 file")
            fh.seek(0)
            first = True
            for line in fh:
                if first and b"\0" in line[:8192]:
                    raise CorpusError(f"{path} is a binary file (it contains NUL bytes), not text; remove it from "
                                      "the corpus or point --corpus at the text files only")
                first = False
                yield line
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise CorpusError(f"{path} is a truncated or corrupt gzip file ({err}); re-download or re-compress it, "
                          "or remove it from the corpus") from None


def empty_corpus_error(corpus_name: str, report: CorpusReport | None) -> CorpusError:
    """Why no text came out of a corpus: undecodable lines are not the same as an empty file."""
    if report is not None and report.skipped_lines:
        return CorpusError(f"corpus {corpus_name} has no UTF-8 text: {report.skipped_lines} line(s) were skipped, "
                           f"the first at {report.first_skipped}; convert it to UTF-8 "
                           "(e.g. `iconv -f cp949 -t utf-8` or `-f latin1`)")
    return CorpusError(f"corpus {corpus_name} is empty: no text found; check the path and format "
                       '(plain text, WikiExtractor or JSON lines with a "text" field)')


def _decoded(path: Path, report: CorpusReport) -> Iterator[tuple[int, str]]:
    good = bad = 0
    for lineno, raw in enumerate(_open_lines(path), 1):
        if len(raw) > report.longest_line:
            report.longest_line, report.longest_at = len(raw), f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
            report.skip(path, lineno, "not UTF-8")
            continue
        good += 1
        yield lineno, line.rstrip("\r\n")
    if bad and not good:
        raise CorpusError(f"{path} is not UTF-8 text ({bad} lines failed to decode); convert it, "
                          "e.g. `iconv -f cp949 -t utf-8`, or remove it from the corpus")


def detect_format(path: Path) -> str:
    if extra := detect_extra(path):
        return extra
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    for raw in _open_lines(path):
        line = raw.strip()
        if line:
            return "wikiextractor" if line.startswith(b"<doc ") else "text"
    return "text"


def _paragraphs_to_sentences(paragraphs: list[str], opts: ReadOptions) -> list[str]:
    return [s for p in paragraphs for s in opts.split(p)]


def _text_docs(path: Path, report: CorpusReport, opts: ReadOptions) -> Iterator[list[str]]:
    paragraphs: list[str] = []
    for _, line in _decoded(path, report):
        if line.strip():
            paragraphs.append(line.strip())
        elif paragraphs:
            yield _paragraphs_to_sentences(paragraphs, opts)
            paragraphs = []
    if paragraphs:
        yield _paragraphs_to_sentences(paragraphs, opts)


def _wiki_docs(path: Path, report: CorpusReport, opts: ReadOptions) -> Iterator[list[str]]:
    paragraphs: list[str] | None = None   # None: between documents
    title_pending = False
    opened = 0                            # line of the open document's <doc tag
    for lineno, line in _decoded(path, report):
        stripped = line.strip()
        if stripped.startswith("<doc "):
            if paragraphs is not None:    # the previous document has no </doc>: this tag closes it
                report.unclosed(path, opened)
                if paragraphs:
                    yield _paragraphs_to_sentences(paragraphs, opts)
            paragraphs, title_pending, opened = [], True, lineno
        elif stripped == "</doc>":
            if paragraphs:
                yield _paragraphs_to_sentences(paragraphs, opts)
            paragraphs = None
        elif paragraphs is not None and stripped:
            if title_pending:  # the article title repeats on the first line; it is not prose
                title_pending = False
                continue
            paragraphs.append(stripped)
    if paragraphs is not None:            # the file ends inside a document
        report.unclosed(path, opened)
        if paragraphs:
            yield _paragraphs_to_sentences(paragraphs, opts)


def _jsonl_docs(path: Path, report: CorpusReport, opts: ReadOptions) -> Iterator[list[str]]:
    for lineno, line in _decoded(path, report):
        if not line.strip():
            continue
        try:
            text = json.loads(line)[opts.text_column]
        except (json.JSONDecodeError, KeyError, TypeError):
            report.skip(path, lineno, f'not a JSON object with a "{opts.text_column}" field')
            continue
        paragraphs = [p.strip() for p in str(text).splitlines() if p.strip()]
        if paragraphs:
            yield _paragraphs_to_sentences(paragraphs, opts)


_READERS = {"text": _text_docs, "wikiextractor": _wiki_docs, "jsonl": _jsonl_docs}


def iter_documents(files: list[Path], report: CorpusReport | None = None,
                   fmt: str = "auto", opts: ReadOptions | None = None) -> Iterator[list[str]]:
    """Stream documents (lists of sentences) from every file in order; `opts`: the
    sentence splitter and the text column (core.data.formats)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; use one of {', '.join(FORMATS)}")
    report = report if report is not None else CorpusReport()
    opts = opts or ReadOptions()
    for path in files:
        report.files += 1
        kind = detect_format(path) if fmt == "auto" else fmt
        docs = read_extra(kind, path, report, opts) if kind in EXTRA_FORMATS else _READERS[kind](path, report, opts)
        for doc in docs:
            doc = [s for s in doc if s]
            if doc:
                report.documents += 1
                report.sentences += len(doc)
                yield doc
