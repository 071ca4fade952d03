"""The corpus formats users already hold: ko_lm_dataformat archives, Parquet files and
`datasets.save_to_disk` directories (optional extra `corpora`).

Each streams as the text formats do (`core.data.corpus`): a document at a time, never
the corpus whole. Parquet is read a row group at a time, a `datasets` directory's Arrow
files a record batch at a time, an archive a line at a time through one zstd stream.

A document's text is a string (paragraphs on lines, split into sentences here) or a list
of strings: sentences already split, kept as given (ko_lm_dataformat's layout, which
KoBigBird's `create_pretraining_data` reads). The column or JSON field it is read from is
`text` unless `--text-column` names another.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.data.config import CorpusError
from core.data.sentences import split_sentences

LMD_SUFFIXES = (".jsonl.zst", ".json.zst", ".jsonl.zstd")
EXTRA_FORMATS = ("lm_dataformat", "parquet", "arrow")
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
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise _error(f"{path} is a datasets DatasetDict with splits {', '.join(splits) or '(none)'}; point --corpus "
                     f"at one of them, e.g. {path / (splits[0] if splits else 'train')}")
    state = path / "state.json"
    if not state.is_file():
        return None
    try:
        names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise _error(f"{state} is not a datasets state file (no _data_files list); re-save the dataset with "
                     "save_to_disk") from None
    missing = [n for n in names if not (path / n).is_file()]
    if missing or not names:
        raise _error(f"datasets directory {path} lacks its Arrow file(s) {', '.join(missing) or '(none listed)'}; "
                     "copy the whole directory save_to_disk wrote")
    return [path / n for n in names]


def document(value, opts: ReadOptions) -> list[str]:
    """A list of sentences kept as given; a string split into paragraphs, then sentences."""
    if isinstance(value, list | tuple):
        return [s.strip() for s in value if isinstance(s, str) and s.strip()]
    paragraphs = [p.strip() for p in str(value).splitlines() if p.strip()]
    return [s for p in paragraphs for s in opts.split(p)]


def read_extra(kind: str, path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    readers = {"lm_dataformat": _lmd_docs, "parquet": _parquet_docs, "arrow": _arrow_docs}
    return readers[kind](path, report, opts)


# -- ko_lm_dataformat ------------------------------------------------------------------------------
def _lmd_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    if path.stat().st_size == 0:
        raise _error(f"{path} is empty (0 bytes), not a zstd archive; remove it or re-write the archive")
    for lineno, line in enumerate(_zstd_lines(path, _need("zstandard", path)), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)[opts.text_column]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            report.skip(path, lineno, f'not a JSON object with a "{opts.text_column}" field')
            continue
        yield document(value, opts)


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
                lines += len(complete)
                yield from complete
    except zstandard.ZstdError as err:
        raise _error(f"{path} is a corrupt zstd archive (after line {lines}: {err}); re-download or re-write it, "
                     "or remove it from the corpus") from None
    if fed:
        raise _error(f"{path} is a truncated zstd archive (its last frame ends early, after line {lines}); "
                     "re-download or re-write it, or remove it from the corpus")
    if tail.strip():
        yield tail


# -- Parquet and Arrow -------------------------------------------------------------------------------
def _parquet_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    pq = _need("pyarrow.parquet", path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise _error(f"{path} is not a readable Parquet file ({str(err).splitlines()[0][:160]}); re-write it, "
                     "or remove it from the corpus") from None
    _check_column(path, pf.schema_arrow, opts)
    for group in range(pf.num_row_groups):
        yield from _docs(pf.read_row_group(group, columns=[opts.text_column]).column(0), opts)


def _arrow_docs(path: Path, report, opts: ReadOptions) -> Iterator[list[str]]:
    """One Arrow file of a `datasets.save_to_disk` directory (Arrow's streaming format)."""
    pa = _need("pyarrow", path)
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            _check_column(path, reader.schema, opts)
            for batch in reader:
                yield from _docs(batch.column(opts.text_column), opts)
    except pa.ArrowInvalid as err:
        raise _error(f"{path} is not a readable Arrow stream ({str(err).splitlines()[0][:160]}); re-save the "
                     "dataset with save_to_disk, or remove the file") from None


def _check_column(path: Path, schema, opts: ReadOptions) -> None:
    if opts.text_column not in schema.names:
        raise _error(f"{path} has no column {opts.text_column!r} (columns: {', '.join(schema.names)}); name the "
                     "text column with --text-column")
    kind = str(schema.field(opts.text_column).type)
    if "string" not in kind:
        raise _error(f"{path}: column {opts.text_column!r} holds {kind}, not text (a string, or a list of "
                     "sentence strings); name the text column with --text-column")


def _docs(column, opts: ReadOptions) -> Iterator[list[str]]:
    for value in column.to_pylist():
        if value is not None:
            yield document(value, opts)


def _need(module: str, path: Path):
    from core.extras import install_hint, installed, require

    if not installed(module):  # a corpus problem, as every other unreadable corpus is
        raise _error(f"{path} needs {install_hint(module)} to be read")
    return require(module, str(path))
