"""The corpora users hold: ko_lm_dataformat archives (written by the package's own
writer), Parquet files (read a row group at a time) and datasets.save_to_disk
directories, with a text column; the sentence splitter; each part of the data's identity,
and every bad file a one-line error naming it."""
import json

import pytest

from core.data import DataConfig, build_dataset, corpus_source
from core.data.corpus import CorpusError, CorpusReport, fingerprint, iter_documents, resolve_files
from core.data.formats import ReadOptions
from core.data.sentences import get_splitter

DOCS = [["첫째 문서의 첫 문장이다.", "둘째 문장은 나눠 두었다. 다시 나누지 않는다"], ["Second document.", "It has two."]]


def read(spec, **opts) -> list[list[str]]:
    return list(iter_documents(resolve_files(spec), CorpusReport(), opts=ReadOptions(**opts) if opts else None))


def one_line_error(match: str, spec, **opts) -> str:
    with pytest.raises(CorpusError, match=match) as err:
        read(spec, **opts)
    assert "\n" not in str(err.value)
    return str(err.value)


# -- ko_lm_dataformat ---------------------------------------------------------------------------------
def test_ko_lm_dataformat_archive_keeps_its_sentence_split(tmp_path):
    lmd = pytest.importorskip("ko_lm_dataformat")
    archive = lmd.Archive(str(tmp_path / "lmd"))
    for doc in DOCS:
        archive.add_data(doc, meta={"source": "test"})
    archive.add_data("문자열 문서는 나눈다. 두 문장이다.")
    archive.commit()
    docs = read(tmp_path / "lmd")  # a directory: the archive and the writer's empty leftover chunk
    assert docs == [*DOCS, ["문자열 문서는 나눈다.", "두 문장이다."]]
    (path,) = tmp_path.glob("lmd/*.jsonl.zst")
    assert read(path) == docs


def test_broken_or_empty_archives_are_named(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    whole = zstandard.ZstdCompressor().compress(b"".join(json.dumps({"text": d}).encode() + b"\n" for d in DOCS * 50))
    (tmp_path / "cut.jsonl.zst").write_bytes(whole[: len(whole) // 2])
    assert str(tmp_path / "cut.jsonl.zst") in one_line_error("truncated zstd archive",
                                                             tmp_path / "cut.jsonl.zst")
    (tmp_path / "junk.jsonl.zst").write_bytes(b"this is not zstd at all")
    one_line_error("corrupt zstd archive", tmp_path / "junk.jsonl.zst")
    (tmp_path / "empty.jsonl.zst").write_bytes(b"")
    one_line_error(r"empty \(0 bytes\)", tmp_path / "empty.jsonl.zst")
    (tmp_path / "body.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b'{"body": ["a."]}\n'))
    report = CorpusReport()
    assert list(iter_documents([tmp_path / "body.jsonl.zst"], report)) == [] and report.skipped_lines == 1
    assert read(tmp_path / "body.jsonl.zst", text_column="body") == [["a."]]


# -- Parquet ---------------------------------------------------------------------------------------------
def write_parquet(path, rows: dict, row_group_size: int = 2):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table(rows), path, row_group_size=row_group_size)
    return path


def test_parquet_streams_a_row_group_at_a_time(tmp_path, monkeypatch):
    texts = [f"문서 {i}의 첫 문장이다. 둘째 문장이다." for i in range(7)]
    path = write_parquet(tmp_path / "c.parquet", {"id": list(range(7)), "content": texts})
    docs = read(path, text_column="content")
    assert docs == [[f"문서 {i}의 첫 문장이다.", "둘째 문장이다."] for i in range(7)]
    import pyarrow.parquet as pq

    groups = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, **kw: groups.append(i) or real(self, i, **kw))
    stream = iter_documents([path], opts=ReadOptions(text_column="content"))
    next(stream), next(stream)
    assert groups == [0]  # two documents read, one row group of four loaded
    next(stream)
    assert groups == [0, 1]


def test_parquet_list_columns_are_sentences_kept_as_given(tmp_path):
    path = write_parquet(tmp_path / "s.parquet", {"text": DOCS})
    assert read(path) == DOCS


def test_parquet_errors_name_the_file_and_the_fix(tmp_path):
    path = write_parquet(tmp_path / "c.parquet", {"id": [1, 2], "body": ["a.", "b."]})
    message = one_line_error("has no column 'text'", path)
    assert str(path) in message and "columns: id, body" in message and "--text-column" in message
    one_line_error("column 'id' holds int64, not text", path, text_column="id")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    one_line_error("not a readable Parquet file", tmp_path / "bad.parquet")
    (tmp_path / "empty.parquet").write_bytes(b"")
    one_line_error("not a readable Parquet file", tmp_path / "empty.parquet")


# -- datasets.save_to_disk ---------------------------------------------------------------------------------
def test_datasets_directory_is_read_from_its_arrow_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"Document {i}. It is short." for i in range(30)]
    datasets.Dataset.from_dict({"body": texts, "n": list(range(30))}).save_to_disk(str(tmp_path / "ds"),
                                                                                   max_shard_size="1KB")
    files = resolve_files(tmp_path / "ds")
    assert files and all(f.suffix == ".arrow" for f in files)
    assert read(tmp_path / "ds", text_column="body") == [[f"Document {i}.", "It is short."] for i in range(30)]
    one_line_error("has no column 'text'", tmp_path / "ds")
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(CorpusError, match="DatasetDict with splits train; point --corpus at one of them"):
        resolve_files(tmp_path / "dd")


# -- identity --------------------------------------------------------------------------------------------
def test_text_column_and_splitter_are_part_of_the_corpus_identity(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "가. 나.", "body": "다."}) + "\n", encoding="utf-8")
    plain = corpus_source(path)
    assert plain.fingerprint == fingerprint([path])  # at the defaults: the identity caches already have
    other = {corpus_source(path, text_column="body").fingerprint, corpus_source(path, sentence_splitter="kss").fingerprint}
    assert len(other | {plain.fingerprint}) == 3
    assert list(corpus_source(path, text_column="body").documents(CorpusReport())) == [["다."]]
    assert "sentence_splitter" not in DataConfig().to_dict() and "text_column" not in DataConfig().to_dict()
    assert DataConfig(text_column="body").to_dict()["text_column"] == "body"
    with pytest.raises(ValueError, match="sentence splitter|sentence_splitter"):
        DataConfig(sentence_splitter="nltk")


def test_a_parquet_corpus_builds_a_dataset_through_its_text_column(tmp_path, corpus_file, cache_dir):
    prose = corpus_file.read_text(encoding="utf-8").split("\n\n")
    path = write_parquet(tmp_path / "prose.parquet", {"doc": prose}, row_group_size=16)
    cfg = DataConfig(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=64, text_column="doc")
    data = build_dataset(cfg, path, cache_dir)
    from_text = build_dataset(cfg.replace(text_column="text"), corpus_file, cache_dir)
    assert data.stats()["sentences"] == from_text.stats()["sentences"]
    assert data.stats()["documents"] == from_text.stats()["documents"] == len(prose)


def test_kss_splits_korean_sentences(tmp_path):
    pytest.importorskip("kss")
    split = get_splitter("kss")
    assert split("정말요? 네. 1953년 미국 해군 대위로 예편하였다!") [-1] == "1953년 미국 해군 대위로 예편하였다!"
    path = tmp_path / "k.txt"
    path.write_text("첫 문장이다. 둘째 문장이다.\n", encoding="utf-8")
    assert list(corpus_source(path, sentence_splitter="kss").documents(CorpusReport())) == [["첫 문장이다.",
                                                                                              "둘째 문장이다."]]


def test_kss_missing_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kss", None)  # hidden, whether installed and imported or not
    with pytest.raises(ValueError, match=r'needs the kss package: pip install -e "\.\[kss\]"'):
        get_splitter("kss")
