"""The corpus formats users already hold: ko_lm_dataformat archives, Parquet files and
`datasets.save_to_disk` directories (optional extra `corpora`).

Each streams as the text formats do (`core.data.corpus`): a document at a time, never
the corpus whole. Parquet is read a row group at a time, a `datasets` directory's Arrow
files a record batch at a time, an archive a line at a time through one zstd stream.

A document's text is a string (paragraphs on lines, split into sentences here) or a list
of strings: sentences already split, kept as given (ko_lm_dataformat's layout, which
KoBigBird's `create_pretraining_data` reads). The column or JSON field it is read from is
`text` unless `--text-column` names another. `read_document` is that rule, for every
format that holds values (JSON lines too); anything else is skipped and counted.

What every reader of a user's text shares is here too: a leading UTF-8 byte-order mark is
dropped (`without_bom`, `decode_utf8`: corpora, task files and TOML specs alike), and a
control character that is not whitespace (a NUL) becomes a space, counted (`scrubbed`).
"""
from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.data.config import CorpusError
from core.data.sentences import split_sentences
from core.errors import first_line

LMD_SUFFIXES = (".jsonl.zst", ".json.zst", ".jsonl.zstd")
EXTRA_FORMATS = ("lm_dataformat", "parquet", "arrow")
READER_MODULES = {"lm_dataformat": "zstandard", "parquet": "pyarrow", "arrow": "pyarrow"}  # the extra `corpora`
# ko_lm_dataformat / lm_dataformat open a chunk under this name and leave it (empty) behind
LMD_INCOMPLETE = "current_chunk_incomplete"


@dataclass(frozen=True)
class ReadOptions:
    """How documents are cut out of a file: the sentence splitter for texts that come
    whole, and the column (or JSON field) that holds a document's text."""
    split: Callable[[str], list[str]] = split_sentences
    text_column: str = "text"


def _error(message: str) -> CorpusError:
    return CorpusError(message)


# -- text: what every reader of a user's file shares ---------------------------------------------------
UTF8_BOM = codecs.BOM_UTF8
# C0 control characters and DEL that are not whitespace (tab, newlines, vertical tab, form feed and
# \x1c-\x1f already are, to the sentence splitter, str.split and SentencePiece alike)
CONTROL_CHARS = "".join(map(chr, [*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F]))
_CONTROL_RUN = re.compile(f"[{re.escape(CONTROL_CHARS)}]+")
_CONTROL_BYTES = tuple(c.encode() for c in CONTROL_CHARS)


def without_bom(first: bytes) -> bytes:
    """A file's first bytes without the UTF-8 byte-order mark that Windows editors write (Notepad,
    Excel's "CSV UTF-8"): it is no character of the text, and left in it hides the `<doc` tag
    format detection looks for, the first JSON object, or the first TOML key."""
    return first[len(UTF8_BOM):] if first.startswith(UTF8_BOM) else first


def decode_utf8(raw: bytes) -> str:
    """A whole text file (task file, TOML spec, JSON metadata) as text, its BOM dropped; a
    UnicodeDecodeError's positions stay offsets into `raw`, what error messages count lines in."""
    body = without_bom(raw)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        shift = len(raw) - len(body)
        raise UnicodeDecodeError(err.encoding, raw, err.start + shift, err.end + shift, err.reason) from None


def has_control_bytes(data: bytes) -> bool:
    """Whether UTF-8 bytes hold a character `scrubbed` replaces (no multi-byte character holds
    these bytes); a search per byte value runs at memory speed, unlike a regex."""
    return any(b in data for b in _CONTROL_BYTES)


def scrubbed(text: str, report, path: Path, lineno: int) -> str:
    """`text` with each run of control characters that are not whitespace (CONTROL_CHARS: NUL,
    ESC, ...) made one space, counted in `report` with the first place. Left in, a NUL after
    "다." hides the sentence end from the splitter (it needs whitespace) and reaches the tokenizer
    as an unknown piece; a space is what such a character stood in for most often (a separator,
    padding), and costs nothing where it did not."""
    if text.isprintable() or not _CONTROL_RUN.search(text):  # isprintable: the fast path, in C
        return text
    runs = _CONTROL_RUN.findall(text)
    report.control(path, lineno, sum(map(len, runs)), "NUL" if runs[0][0] == "\0" else f"U+{ord(runs[0][0]):04X}")
    return _CONTROL_RUN.sub(" ", text)


def decoded_line(raw: bytes, report, path: Path, lineno: int) -> str | None:
    """One raw line of a text corpus as text, line end and control characters gone; None where it
    is not UTF-8 (skipped and counted: one broken line must not stop a run)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        report.skip(path, lineno, "not UTF-8")
        return None
    return scrubbed(line.rstrip("\r\n"), report, path, lineno)


def sentences_of(paragraphs: list[str], opts: ReadOptions) -> list[str]:
    return [s for p in paragraphs for s in opts.split(p)]


def detect_extra(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(LMD_SUFFIXES):
        return "lm_dataformat"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    return None


def dataset_dir_files(path: Path) -> list[Path] | None:
    """The Arrow files of a `datasets.save_to_disk` directory, in the order its state.json
    lists them (None: not such a directory). A DatasetDict names its splits instead."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads(decode_utf8((path / "dataset_dict.json").read_bytes())).get("splits", [])
        raise _error(f"{path} is a datasets DatasetDict with splits {', '.join(splits) or '(none)'}; point --corpus "
                     f"at one of them, e.g. {path / (splits[0] if splits else 'train')}")
    state = path / "state.json"
    if not state.is_file():
        return None
    try:
        names = [f["filename"] for f in json.loads(decode_utf8(state.read_bytes()))["_data_files"]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise _error(f"{state} is not a datasets state file (no _data_files list); re-save the dataset with "
                     "save_to_disk") from None
    missing = [n for n in names if not (path / n).is_file()]
    if missing or not names:
        raise _error(f"datasets directory {path} lacks its Arrow file(s) {', '.join(missing) or '(none listed)'}; "
                     "copy the whole directory save_to_disk wrote")
    return [path / n for n in names]


def read_document(value, opts: ReadOptions, report, path: Path, lineno: int) -> list[str]:
    """The one rule for what a document's value may be, in every format that holds values (JSON
    lines, ko_lm_dataformat, Parquet, Arrow): a string is text (paragraphs on lines, split into
    sentences); a list is the document's sentences, kept as given, its nulls (a list<string>
    column's missing entries, as Parquet always read them) and blank strings dropped. Anything
    else (null, a number, a boolean, an object, a list holding one of those) is no text: skipped
    and counted, never read as its Python repr ("None", "42", "['First.', 'Second.']")."""
    if isinstance(value, str):
        text = scrubbed(value, report, path, lineno)
        return sentences_of([p.strip() for p in text.splitlines() if p.strip()], opts)
    if isinstance(value, list | tuple) and all(v is None or isinstance(v, str) for v in value):
        return [s for v in value if v and (s := scrubbed(v, report, path, lineno).strip())]
    report.skip(path, lineno, f'"{opts.text_column}" is {_kind(value)}, not a string or a list of sentence strings')
    return []


def _kind(value) -> str:
    """A value's kind in JSON's words: what the user wrote, not Python's type names."""
    if isinstance(value, list | tuple):
        return f"a list holding {_kind(next(v for v in value if v is not None and not isinstance(v, str)))}"
    kinds = ((type(None), "null"), (bool, "a boolean"), (int | float, "a number"), (dict, "an object"))
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


def json_document(line: str, opts: ReadOptions, report, path: Path, lineno: int) -> list[str]:
    """One JSON-lines record's document (JSON lines, ko_lm_dataformat); a line that is not an
    object with the text field is skipped and counted."""
    if not line.strip():
        return []
    try:
        value = json.loads(line)[opts.text_column]
    except (json.JSONDecodeError, KeyError, TypeError):
        report.skip(path, lineno, f'not a JSON object with a "{opts.text_column}" field')
        return []
    return read_document(value, opts, report, path, lineno)


def read_extra(kind: str, path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    readers = {"lm_dataformat": _lmd_docs, "parquet": _parquet_docs, "arrow": _arrow_docs}
    return readers[kind](path, report, opts)


# -- ko_lm_dataformat ------------------------------------------------------------------------------
def _lmd_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    if path.stat().st_size == 0:
        raise _error(f"{path} is empty (0 bytes), not a zstd archive; remove it or re-write the archive")
    for lineno, raw in enumerate(_zstd_lines(path, _need("zstandard", path)), 1):
        line = decoded_line(raw, report, path, lineno)
        if line is not None:
            yield json_document(line, opts, report, path, lineno)


def _zstd_lines(path: Path, zstandard, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Lines of every zstd frame in the file, a chunk at a time; a frame cut short (a
    truncated download) is an error, not a silently shorter corpus."""
    decompressor, fed, tail, lines = zstandard.ZstdDecompressor(), False, b"", 0
    frame = decompressor.decompressobj()
    try:
        with open(path, "rb") as fh:
            while data := fh.read(chunk):
                while data:
                    tail += frame.decompress(data)
                    fed, data = True, b""
                    if frame.eof:  # the next frame, if any, starts in what is left
                        data, frame, fed = frame.unused_data, decompressor.decompressobj(), False
                *complete, tail = tail.split(b"\n")
                if complete and not lines:
                    complete[0] = without_bom(complete[0])
                lines += len(complete)
                yield from complete
    except zstandard.ZstdError as err:
        raise _error(f"{path} is a corrupt zstd archive (after line {lines}: {err}); re-download or re-write it, "
                     "or remove it from the corpus") from None
    if fed:
        raise _error(f"{path} is a truncated zstd archive (its last frame ends early, after line {lines}); "
                     "re-download or re-write it, or remove it from the corpus")
    if tail.strip():
        yield tail if lines else without_bom(tail)


# -- Parquet and Arrow -------------------------------------------------------------------------------
def _parquet_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    pq = _need("pyarrow.parquet", path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise _error(f"{path} is not a readable Parquet file ({first_line(err, 160)}); re-write it, "
                     "or remove it from the corpus") from None
    _check_column(path, pf.schema_arrow, opts)
    row = 1
    for group in range(pf.num_row_groups):
        column = pf.read_row_group(group, columns=[opts.text_column]).column(0)
        yield from _docs(column, opts, report, path, row)
        row += len(column)


def _arrow_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    """One Arrow file of a `datasets.save_to_disk` directory (Arrow's streaming format)."""
    pa = _need("pyarrow", path)
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            _check_column(path, reader.schema, opts)
            row = 1
            for batch in reader:
                yield from _docs(batch.column(opts.text_column), opts, report, path, row)
                row += batch.num_rows
    except pa.ArrowInvalid as err:
        raise _error(f"{path} is not a readable Arrow stream ({first_line(err, 160)}); re-save the "
                     "dataset with save_to_disk, or remove the file") from None


def _check_column(path: Path, schema, opts: ReadOptions) -> None:
    if opts.text_column not in schema.names:
        raise _error(f"{path} has no column {opts.text_column!r} (columns: {', '.join(schema.names)}); name the "
                     "text column with --text-column")
    kind = str(schema.field(opts.text_column).type)
    if "string" not in kind:
        raise _error(f"{path}: column {opts.text_column!r} holds {kind}, not text (a string, or a list of "
                     "sentence strings); name the text column with --text-column")


def _docs(column, opts: ReadOptions, report, path: Path, first_row: int) -> Iterator[list[str]]:
    """A column's documents; a row's number (from 1, across row groups and batches) is its place."""
    for row, value in enumerate(column.to_pylist(), first_row):
        yield read_document(value, opts, report, path, row)


def check_reader_packages(files: list[Path]) -> None:
    """Every package the corpus's formats need, checked before anything is read: a Parquet
    file among a thousand text files fails now, not an hour into tokenising."""
    from core.extras import install_hint, installed

    for path in files:
        module = READER_MODULES.get(detect_extra(path) or "")
        if module is not None and not installed(module):
            raise _error(f"{path} needs {install_hint(module)} to be read")


def _need(module: str, path: Path):
    from core.extras import install_hint, installed, require

    if not installed(module):  # a corpus problem, as every other unreadable corpus is
        raise _error(f"{path} needs {install_hint(module)} to be read")
    return require(module, str(path))
