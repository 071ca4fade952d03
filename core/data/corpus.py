"""Corpus readers: plain text, WikiExtractor, JSON lines; files, directories, globs, gzip.

Everything streams: a document is yielded as soon as it is complete, so a corpus larger
than memory is never loaded whole. A document is a list of sentences.

Bad bytes do not stop a run: a line that is not valid UTF-8 is skipped and counted
(`CorpusReport.skipped_lines`, with the first place it happened), because one broken
line in a 10 GB dump should not cost a day. A file in which *no* line decodes is an
error that names the file. A WikiExtractor document without its `</doc>` (a dump cut
short, or a hand-edited file) is kept: the next `<doc` or the end of the file closes it,
and it is counted (`unclosed_docs`, with the first one's place), never dropped silently.
A file may start with a UTF-8 byte-order mark (dropped before anything reads the first line,
format detection included), and a control character in the text (a NUL) becomes a space,
counted (`control_chars`, with the first place): see core.data.formats, which every reader
shares, with the one rule for what a JSON or Parquet document's value may be.
"""
from __future__ import annotations

import codecs
import errno
import glob
import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.data.config import CorpusError
from core.data.formats import (
    EXTRA_FORMATS,
    UTF8_BOM,
    ReadOptions,
    dataset_dir_files,
    decoded_line,
    detect_extra,
    has_control_bytes,
    json_document,
    read_extra,
    sentences_of,
    without_bom,
)

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
    control_chars: int = 0       # control characters (NUL, ...) read as spaces: core.data.formats.scrubbed
    first_control: str = ""      # "path:line (NUL)" of the first

    def unclosed(self, path: Path, lineno: int) -> None:
        self.unclosed_docs += 1
        if not self.first_unclosed:
            self.first_unclosed = f"{path}:{lineno}"

    def control(self, path: Path, lineno: int, count: int, char: str) -> None:
        self.control_chars += count
        if not self.first_control:
            self.first_control = f"{path}:{lineno} ({char})"

    def skip(self, path: Path, lineno: int, reason: str) -> None:
        self.skipped_lines += 1
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
        if not self.first_skipped:
            self.first_skipped = f"{path}:{lineno} ({reason})"


def resolve_files(spec: str | os.PathLike) -> list[Path]:
    """A file, a directory (recursively, hidden files skipped) or a glob pattern. A name that
    is there but is no readable file (_unreadable_reason) is an error that says what it is,
    never "not found", and never silently left out of a directory's or a pattern's files."""
    spec = str(spec)
    path = Path(spec)
    if reason := _unreadable_reason(path):
        raise CorpusError(f"corpus {reason}")
    if path.is_file():
        return [path]
    if path.is_dir() and (arrow := dataset_dir_files(path)) is not None:
        return arrow  # a datasets.save_to_disk directory: its Arrow files
    if path.is_dir():
        files = _directory_files(path)
        if not files:
            raise CorpusError(f"corpus directory {spec} contains no files")
        return files
    if any(c in spec for c in "*?["):
        files = _pattern_files(spec)
        if not files:
            raise CorpusError(f"corpus pattern {spec!r} matches no files")
        return files
    raise CorpusError(f"corpus file not found: {spec} (give a file, a directory or a glob pattern)")


def _directory_files(root: Path) -> list[Path]:
    """The files under `root`, sorted, hidden ones (and hidden folders) skipped, symbolic links to
    folders not followed. A folder that cannot be listed, or an entry that is no readable file,
    is an error naming it: its text would otherwise be missing from the corpus without a word."""
    def cannot_list(err: OSError) -> None:
        raise CorpusError(f"corpus directory {err.filename} cannot be read ({err.strerror.lower()}); "
                          f"`chmod -R u+rX {root}`, or point --corpus at the readable files")
    files = []
    for folder, dirs, names in os.walk(root, onerror=cannot_list):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for p in (Path(folder) / name for name in names if not name.startswith(".")):
            if reason := _unreadable_reason(p):
                raise CorpusError(f"corpus directory {root}: {reason}")
            files.append(p)
    return sorted(files)


def _pattern_files(spec: str) -> list[Path]:
    """The files a glob pattern matches (folders it matches are passed over, as a pattern matches them)."""
    matches = [Path(p) for p in glob.glob(spec, recursive=True)]
    for p in matches:
        if not p.is_dir() and (reason := _unreadable_reason(p)):
            raise CorpusError(f"corpus pattern {spec!r}: {reason}")
    return sorted(p for p in matches if p.is_file())


_STREAM_FIX = ("a corpus is read more than once (its fingerprint, the tokenizer, the tokens) and a stream only "
               "once; save it to a file (`cat {path} > corpus.txt`) and give that")
_NOT_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)", _STREAM_FIX), (stat.S_ISCHR, "a character device", _STREAM_FIX),
              (stat.S_ISSOCK, "a socket", "give the file or directory that holds the text"),
              (stat.S_ISBLK, "a block device", "give the file or directory that holds the text"))


def _unreadable_reason(path: Path) -> str | None:
    """What `path` is, with the fix, when it is there but is no file or folder that can be read:
    a FIFO, a socket, a device, a symbolic link that is dangling or a loop, no read permission.
    None when it is readable, or is not there at all (the caller's "not found")."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return _unreachable(path, err)
    for test, what, fix in _NOT_FILES:
        if test(mode):
            return f"{path} is {what}, not a file: {fix.format(path=path)}"
    if stat.S_ISDIR(mode) and not os.access(path, os.R_OK | os.X_OK):
        return f"directory {path} cannot be read (permission denied); `chmod -R u+rX {path}`"
    if stat.S_ISREG(mode) and not os.access(path, os.R_OK):
        return f"{path} cannot be read (permission denied); `chmod u+r {path}`, or give a readable copy"
    return None


def _unreachable(path: Path, err: OSError) -> str | None:
    """Why stat failed on a name: a link loop, a folder above it without permission, a dangling link."""
    if err.errno == errno.ELOOP:
        where = "is" if path.is_symlink() else "passes through"
        return (f"{path} {where} a symbolic link loop (following it leads back to itself, {err.strerror}); point "
                f"the link at the corpus (`ln -sfn FILE {path}`) or give the file's own path")
    if err.errno == errno.EACCES:
        return f"{path} cannot be reached (permission denied on a directory above it); `chmod u+x` that directory"
    if path.is_symlink():
        return (f"{path} is a symbolic link to {os.readlink(path)}, which does not exist (a dangling link); point "
                f"it at the corpus (`ln -sfn FILE {path}`) or give the file's own path")
    return None


HASHED_END = 1 << 20  # bytes hashed at each end of a file (all of one up to twice this)
# Reading that changed after caches were first keyed (issue 30): a leading UTF-8 BOM is dropped and
# control characters become spaces. A file whose text they change is marked so in its fingerprint line
# (its caches are rebuilt); every other file's line is as it was, so its caches stay valid.
READER_FIXES = "fixes 1"


def _hashed_chunks(path: Path, size: int) -> list[bytes]:
    with open(path, "rb") as fh:
        if size <= 2 * HASHED_END:
            return [fh.read()]
        head = fh.read(HASHED_END)
        fh.seek(size - HASHED_END)
        return [head, fh.read(HASHED_END)]


def _read_differently(path: Path, chunks: list[bytes]) -> bool:
    """Whether READER_FIXES change the text of `path`, as far as the bytes hashed anyway show: a
    leading BOM (a .gz file's in its first unpacked bytes), or a control character. Not looked for,
    as it would mean unpacking or reading whole files at every start: controls inside .gz, Parquet,
    Arrow and zstd files and in the unhashed middle of a file over 2 MiB, and JSON texts that are
    no string. Such a file keeps a cache built before the fixes, as an edit there keeps it."""
    if detect_extra(path):
        return False  # ko_lm_dataformat's JSON parser always dropped a BOM; Parquet and Arrow are binary
    if path.suffix == ".gz":
        return _gzip_head(path).startswith(UTF8_BOM)
    return chunks[0].startswith(UTF8_BOM) or any(map(has_control_bytes, chunks))


def _gzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(len(UTF8_BOM))
    except (OSError, EOFError, zlib.error):
        return b""  # a broken archive: reading it names it


def fingerprint(files: list[Path]) -> str:
    """Identity of a corpus for caching: each file's name (relative to the corpus: it sets
    the order and, by suffix, the format), size and content hash.

    Content, not modification times: an edit that keeps the size and mtime (`touch -d`) is
    seen, and a corpus copied or moved elsewhere (new mtimes, same bytes) keeps its caches
    and finished runs. Files larger than 2 MiB are hashed at both ends (a MiB each): a
    single 10 GB dump costs milliseconds, and an edit only in the middle of such a file that
    keeps its size is the one change this misses. Smaller files are read whole, so a corpus of
    WikiExtractor's 1 MB files is read once per start (12 ms for the 10 MB kowiki sample,
    about 1.5 s per GB at this machine's 0.7 GB/s SHA-1, from the page cache). A file whose
    text the READER_FIXES change carries them in its line: its caches hold the old reading."""
    paths = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path()
    h = hashlib.sha1(b"corpus v2\n")
    for p in paths:
        size = p.stat().st_size
        chunks = _hashed_chunks(p, size)
        fixed = f"|{READER_FIXES}" if _read_differently(p, chunks) else ""
        content = hashlib.sha1(b"".join(chunks)).hexdigest()
        h.update(f"{p.relative_to(root).as_posix()}|{size}|{content}{fixed}\n".encode())
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
    """Raw lines, the first without a UTF-8 BOM; UTF-16 and binary files (a NUL in the first
    line; later NULs are text's, core.data.formats.scrubbed), and a truncated or corrupt gzip
    file, are named with the fix, not decoded into nonsense or a deep traceback."""
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
                if first:
                    line = without_bom(line)
                    if b"\0" in line[:8192]:
                        raise CorpusError(f"{path} is a binary file (it contains NUL bytes), not text; remove it "
                                          "from the corpus or point --corpus at the text files only")
                first = False
                yield line
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise CorpusError(f"{path} is a truncated or corrupt gzip file ({err}); re-download or re-compress it, "
                          "or remove it from the corpus") from None


def empty_corpus_error(corpus_name: str, report: CorpusReport | None) -> CorpusError:
    """Why no text came out of a corpus: undecodable lines, or records without text, are not
    the same as an empty file, and each has its own fix."""
    if report is not None and set(report.skipped_reasons) == {"not UTF-8"}:
        return CorpusError(f"corpus {corpus_name} has no UTF-8 text: {report.skipped_lines} line(s) were skipped, "
                           f"the first at {report.first_skipped}; convert it to UTF-8 "
                           "(e.g. `iconv -f cp949 -t utf-8` or `-f latin1`)")
    if report is not None and report.skipped_lines:
        return CorpusError(f"corpus {corpus_name} has no text: {report.skipped_lines} line(s) or record(s) were "
                           f"skipped, the first at {report.first_skipped}; fix them, or name the text field or "
                           "column with --text-column")
    return CorpusError(f"corpus {corpus_name} is empty: no text found; check the path and format "
                       '(plain text, WikiExtractor or JSON lines with a "text" field)')


def _decoded(path: Path, report: CorpusReport) -> Iterator[tuple[int, str]]:
    good = bad = 0
    for lineno, raw in enumerate(_open_lines(path), 1):
        if len(raw) > report.longest_line:
            report.longest_line, report.longest_at = len(raw), f"{path}:{lineno}"
        line = decoded_line(raw, report, path, lineno)
        if line is None:
            bad += 1
            continue
        good += 1
        yield lineno, line
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


def _text_docs(path: Path, report: CorpusReport, opts: ReadOptions) -> Iterator[list[str]]:
    paragraphs: list[str] = []
    for _, line in _decoded(path, report):
        if line.strip():
            paragraphs.append(line.strip())
        elif paragraphs:
            yield sentences_of(paragraphs, opts)
            paragraphs = []
    if paragraphs:
        yield sentences_of(paragraphs, opts)


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
                    yield sentences_of(paragraphs, opts)
            paragraphs, title_pending, opened = [], True, lineno
        elif stripped == "</doc>":
            if paragraphs:
                yield sentences_of(paragraphs, opts)
            paragraphs = None
        elif paragraphs is not None and stripped:
            if title_pending:  # the article title repeats on the first line; it is not prose
                title_pending = False
                continue
            paragraphs.append(stripped)
    if paragraphs is not None:            # the file ends inside a document
        report.unclosed(path, opened)
        if paragraphs:
            yield sentences_of(paragraphs, opts)


def _jsonl_docs(path: Path, report: CorpusReport, opts: ReadOptions) -> Iterator[list[str]]:
    for lineno, line in _decoded(path, report):
        yield json_document(line, opts, report, path, lineno)


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
