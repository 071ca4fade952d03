"""Issue 30, reading what users give: a UTF-8 byte-order mark anywhere a text file starts
(corpora of every format, task files, TOML specs), JSON texts that are not strings, control
characters inside text, and a corpus path that is there but is no file. Each test writes
real files and calls the real readers; each fails on the code before its fix."""
import codecs
import gzip
import hashlib
import json
import os
import re
import socket
import tempfile
from pathlib import Path

import pytest

from ablations.specs import load_toml
from core.data import DataConfig, build_dataset
from core.data.builtin_corpus import iter_builtin_documents
from core.data.corpus import CorpusError, CorpusReport, detect_format, fingerprint, iter_documents, resolve_files
from core.finetune import load_task
from core.finetune.tsv import read_tsv

BOM = codecs.BOM_UTF8
SMALL = dict(vocab_size=600, max_length=64, dupe_factor=1, max_eval_examples=16)


def builtin_docs(n: int) -> list[list[str]]:
    return [doc for _, doc in zip(range(n), iter_builtin_documents())]


def read(spec) -> tuple[list[list[str]], CorpusReport]:
    report = CorpusReport()
    return list(iter_documents(resolve_files(spec), report)), report


def packed(text: str, bom: bool, suffix: str = "") -> bytes:
    """The file's bytes: UTF-8 with or without a BOM, compressed as its suffix says (the BOM inside)."""
    raw = (BOM if bom else b"") + text.encode("utf-8")
    if suffix == ".gz":
        return gzip.compress(raw)
    if suffix == ".zst":
        return pytest.importorskip("zstandard").ZstdCompressor().compress(raw)
    return raw


# -- finding 3: a UTF-8 BOM at the start of any text input ----------------------------------------------
def wiki(docs: list[list[str]]) -> str:
    """WikiExtractor output: the tag, the title again, a blank line, a paragraph per line, </doc>."""
    return "".join(f'<doc id="{i}" url="https://ko.wikipedia.org/wiki?curid={i}" title="T{i}">\nT{i}\n\n'
                   + "\n".join(doc) + "\n</doc>\n" for i, doc in enumerate(docs, 1))


JSONL = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                for t in ("첫 문서다. 두 문장이다.", "둘째 문서다.\n새 문단이다.", "Third document."))
KORSTS = ("genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
          + "".join(f"main-news\tf\t2012\t{i}\t{i % 6}.0\t문장 {i}이다.\t다른 문장 {i}이다.\n" for i in range(12)))
NER = "## klue-ner-v1.1\n" + "".join(
    f"## {i}\t<김{c}:PS> 씨\n" + f"김\tB-PS\n{c}\tI-PS\n \tO\n씨\tO\n\n" for i, c in enumerate("가나다라마바사아자차카타파하" * 3))
NLI = json.dumps([{"premise": f"전제 문장 {i}이다.", "hypothesis": f"가설 {i}.", "gold_label": "neutral"}
                  for i in range(60)], ensure_ascii=False)
TOML = 'name = "bom"\nbase = "bert"\n[[arms]]\nname = "base"\n[[arms]]\nname = "wide"\noverrides = {"model.hidden_size" = 64}\n'


def corpus_read(path: Path):
    docs, report = read(path)
    assert report.skipped_lines == 0 and docs
    return docs


def task_read(spec: str):
    task = load_task(spec)
    return task.splits, task.classes


def korsts_read(directory: Path):
    header, _ = read_tsv(directory / "sts-train.tsv")
    assert header[0] == "genre"  # not "\ufeffgenre": a first column named by its header must be found
    return task_read(f"tsv:{directory}:text_a=sentence1,text_b=sentence2,label=score,kind=pair-regression")


# name, file name, content, compression suffix, reader of the written path
BOM_CASES = [
    ("text", "prose.txt", "First doc. Two sentences.\nA second line.\n\nSecond doc.\n", "", corpus_read),
    ("wikiextractor", "wiki_00", wiki(builtin_docs(36)), "", corpus_read),
    ("jsonl", "c.jsonl", JSONL, "", corpus_read),
    ("text.gz", "prose.txt.gz", "First doc. Two sentences.\n\nSecond doc.\n", ".gz", corpus_read),
    ("wikiextractor.gz", "wiki_00.gz", wiki(builtin_docs(5)), ".gz", corpus_read),
    ("jsonl.gz", "c.jsonl.gz", JSONL, ".gz", corpus_read),
    ("ko_lm_dataformat", "data_0.jsonl.zst", JSONL, ".zst", corpus_read),
    ("korsts-tsv", "korsts", KORSTS, "", korsts_read),
    ("klue-ner", "ner.tsv", NER, "", lambda p: task_read(f"klue-ner:{p}")),
    ("klue-nli", "nli.json", NLI, "", lambda p: task_read(f"klue-nli:{p}")),
    ("toml-spec", "spec.toml", TOML, "", load_toml),
]


def write_case(directory: Path, name: str, content: str, suffix: str, bom: bool) -> Path:
    directory.mkdir()
    if name == "korsts":  # a task is a directory of three split files
        for split in ("train", "dev", "test"):
            (directory / name).mkdir(exist_ok=True)
            (directory / name / f"sts-{split}.tsv").write_bytes(packed(content, bom))
    else:
        (directory / name).write_bytes(packed(content, bom, suffix))
    return directory / name


@pytest.mark.parametrize("case", BOM_CASES, ids=[c[0] for c in BOM_CASES])
def test_a_byte_order_mark_changes_nothing_in_any_text_input(tmp_path, case):
    _, name, content, suffix, reader = case
    plain = reader(write_case(tmp_path / "plain", name, content, suffix, bom=False))
    marked = reader(write_case(tmp_path / "bom", name, content, suffix, bom=True))
    assert marked == plain
    assert "\ufeff" not in repr(marked)


def test_a_wikiextractor_file_with_a_bom_is_still_wikiextractor(tmp_path):
    path = tmp_path / "wiki_00"
    path.write_bytes(BOM + wiki(builtin_docs(36)).encode())
    assert detect_format(path) == "wikiextractor"
    docs, report = read(path)
    assert (len(docs), report.documents) == (36, 36)  # read as plain text: 633 "documents"
    assert not any(s.startswith(("<doc", "</doc>", "T1")) for doc in docs for s in doc)  # tags, titles


# -- finding 4: a JSON text that is not a string ---------------------------------------------------------
RECORDS = [
    {"text": ["첫 문장이다.", "둘째 문장. 다시 나누지 않는다"]},   # a list: the sentences, kept as given
    {"text": "문자열은 나눈다. 두 문장이다."},
    {"text": None}, {"text": 42}, {"text": {"a": 1}}, {"text": True}, {"text": ["a.", 3]},
    {"text": ["b.", None, " ", "c."]},                           # a list's nulls: missing sentences
    {"text": []}, {"text": ""},                                  # empty: no document, nothing wrong
]
KEPT = [["첫 문장이다.", "둘째 문장. 다시 나누지 않는다"], ["문자열은 나눈다.", "두 문장이다."], ["b.", "c."]]
NOT_TEXT = "not a string or a list of sentence strings"
SKIPPED = {f'"text" is {kind}, {NOT_TEXT}': 1
           for kind in ("null", "a number", "an object", "a boolean", "a list holding a number")}


@pytest.mark.parametrize("name, suffix", [("c.jsonl", ""), ("c.jsonl.gz", ".gz"), ("c.jsonl.zst", ".zst")])
def test_json_texts_that_are_not_strings_are_sentences_or_skipped_and_counted(tmp_path, name, suffix):
    path = tmp_path / name
    path.write_bytes(packed("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), False, suffix))
    docs, report = read(path)
    assert docs == KEPT  # not "None", "42", "{'a': 1}", "True" or "['첫 문장이다.', ...]"
    assert report.skipped_reasons == SKIPPED and report.skipped_lines == 5
    assert report.first_skipped == f'{path}:3 ("text" is null, {NOT_TEXT})'


def test_a_corpus_of_sentence_lists_keeps_every_sentence(tmp_path):
    docs = builtin_docs(60)
    path = tmp_path / "lists.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    got, report = read(path)
    assert got == docs and report.sentences == sum(map(len, docs)) == 2437  # the repr gave far fewer
    assert report.skipped_lines == 0


def test_parquet_follows_the_same_rule_for_document_values(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"text": [["a.", None, "b."], None, ["c."]]}), lists, row_group_size=2)
    docs, report = read(lists)
    assert docs == [["a.", "b."], ["c."]] and report.skipped_reasons == {f'"text" is null, {NOT_TEXT}': 1}
    assert report.first_skipped.startswith(f"{lists}:2 ")
    records = tmp_path / "records.parquet"  # a struct column passes the type check ("string" in its type)
    pq.write_table(pa.table({"text": [{"body": "x."}, {"body": "y."}]}), records)
    docs, report = read(records)
    assert docs == [] and report.skipped_reasons == {f'"text" is an object, {NOT_TEXT}': 2}


def test_a_corpus_with_no_text_values_says_so_not_convert_to_utf8(tmp_path):
    path = tmp_path / "nulls.jsonl"
    path.write_text('{"text": null}\n' * 20, encoding="utf-8")
    with pytest.raises(CorpusError, match=r"has no text: 20 line\(s\) or record\(s\) were skipped, the first at "
                                          r".*nulls.jsonl:1 \(\"text\" is null") as err:
        build_dataset(DataConfig(**SMALL), path, tmp_path / "cache")
    assert "UTF-8" not in str(err.value)


# -- finding 5: control characters inside text -------------------------------------------------------------
def paragraphs_with(docs: list[list[str]], joiner: str, n: int) -> tuple[str, str]:
    """One paragraph line per document; the first `n` sentence ends after line 1 joined by `joiner`
    instead of a space. Returns (clean text, text with the joiners)."""
    clean, dirty, left = [], [], n
    for i, doc in enumerate(docs):
        clean.append(" ".join(doc))
        line = doc[0]
        for s in doc[1:]:
            use = i > 0 and left > 0 and line.endswith(".")
            left -= use
            line += (joiner if use else " ") + s
        dirty.append(line)
    assert left == 0
    return "\n\n".join(clean) + "\n", "\n\n".join(dirty) + "\n"


def test_nul_bytes_in_text_become_spaces_and_are_counted(tmp_path):
    clean, dirty = paragraphs_with(builtin_docs(60), "\0", 200)
    (tmp_path / "clean.txt").write_text(clean, encoding="utf-8")
    (tmp_path / "nul.txt").write_text(dirty, encoding="utf-8")
    want, _ = read(tmp_path / "clean.txt")
    got, report = read(tmp_path / "nul.txt")
    assert got == want  # every sentence boundary after a NUL kept, no NUL left in a sentence
    assert report.control_chars == 200 and report.first_control == f"{tmp_path / 'nul.txt'}:3 (NUL)"
    assert report.skipped_lines == 0


def test_the_data_statistics_report_control_characters(tmp_path):
    clean, dirty = paragraphs_with(builtin_docs(60), "\0", 200)
    (tmp_path / "clean.txt").write_text(clean, encoding="utf-8")
    (tmp_path / "nul.txt").write_text(dirty, encoding="utf-8")
    want = build_dataset(DataConfig(**SMALL), tmp_path / "clean.txt", tmp_path / "cache").stats()
    got = build_dataset(DataConfig(**SMALL), tmp_path / "nul.txt", tmp_path / "cache").stats()
    assert (got["control_chars"], got["first_control"]) == (200, f"{tmp_path / 'nul.txt'}:3 (NUL)")
    assert (want["control_chars"], want["first_control"]) == (0, "")
    assert (got["sentences"], got["tokens"], got["unk_rate"]) == (want["sentences"], want["tokens"], want["unk_rate"])


def test_which_control_characters_become_spaces(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("First line is clean.\nEnd.\x1bNext.\x01\x01Then\x7fmore.\n"
                    "Tab\tand form\x0cfeed stay as they were.\n", encoding="utf-8")
    docs, report = read(path)
    assert docs == [["First line is clean.", "End.", "Next.", "Then more.", "Tab\tand form\x0cfeed stay as they were."]]
    assert report.control_chars == 4 and report.first_control == f"{path}:2 (U+001B)"  # a run of two is one space
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "ok."}\n' + json.dumps({"text": "다.\u0000다음 문장이다.", "id": 2}) + "\n")
    docs, report = read(jsonl)
    assert docs == [["ok."], ["다.", "다음 문장이다."]] and report.first_control == f"{jsonl}:2 (NUL)"


def test_a_nul_in_the_first_line_is_still_a_binary_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(BOM + b"\0\1\2 binary\nmore\n")
    with pytest.raises(CorpusError, match="weights.bin is a binary file"):
        read(path)


# -- the caches of files the fixes do not change -------------------------------------------------------
def v2_fingerprint(path: Path) -> str:
    """The corpus fingerprint as it was before these fixes (one small file)."""
    raw = path.read_bytes()
    line = f"{path.name}|{len(raw)}|{hashlib.sha1(raw).hexdigest()}\n"
    return hashlib.sha1(b"corpus v2\n" + line.encode()).hexdigest()[:16]


def test_caches_stay_valid_where_the_reading_did_not_change(tmp_path):
    unchanged = {"a.txt": "Plain text.\r\nTabs\tand\x0cform feeds.\n", "b.jsonl": JSONL, "w": wiki(builtin_docs(3))}
    for name, text in unchanged.items():
        (tmp_path / name).write_bytes(text.encode())
        assert fingerprint([tmp_path / name]) == v2_fingerprint(tmp_path / name)
    (tmp_path / "c.txt.gz").write_bytes(packed("Compressed.\n", False, ".gz"))
    assert fingerprint([tmp_path / "c.txt.gz"]) == v2_fingerprint(tmp_path / "c.txt.gz")
    # a file these fixes read differently gets a new identity: its old caches hold the old reading
    changed = {"bom.txt": BOM + b"Text.\n", "nul.txt": b"Text.\nA\0B.\n", "bom.txt.gz": packed("Text.\n", True, ".gz")}
    for name, raw in changed.items():
        (tmp_path / name).write_bytes(raw)
        assert fingerprint([tmp_path / name]) != v2_fingerprint(tmp_path / name)


# -- finding 14: a corpus path that is there but is no file ---------------------------------------------
@pytest.fixture
def short_dir():
    """A directory with a short path: a Unix socket's path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ba-", dir="/tmp"))
    yield path
    for p in path.iterdir():
        p.unlink()
    path.rmdir()


def make_special(kind: str, where: Path) -> tuple[Path, str]:
    """A path of the kind, and what the error must call it."""
    path = where / kind
    if kind == "fifo":
        os.mkfifo(path)
        return path, "is a FIFO (named pipe), not a file"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
        return path, "is a socket, not a file"
    if kind == "loop":
        path.symlink_to(path)
        return path, "is a symbolic link loop"
    if kind == "loop-of-two":
        path.symlink_to(where / "other")
        (where / "other").symlink_to(path)
        return path, "is a symbolic link loop"
    path.symlink_to(where / "moved-away.txt")
    return path, f"is a symbolic link to {where / 'moved-away.txt'}, which does not exist"


KINDS = ["fifo", "socket", "loop", "loop-of-two", "dangling"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_corpus_that_is_no_file_is_named_for_what_it_is(short_dir, kind):
    path, what = make_special(kind, short_dir)
    with pytest.raises(CorpusError) as err:
        resolve_files(path)
    message = str(err.value)
    assert message.startswith(f"corpus {path} {what}") and "not found" not in message and "\n" not in message
    assert "`" in message or kind == "socket"  # the fix, as a command


def test_a_character_device_is_named():
    with pytest.raises(CorpusError, match=r"corpus /dev/null is a character device, not a file: .*cat /dev/null >"):
        resolve_files("/dev/null")


@pytest.mark.parametrize("kind", KINDS)
def test_a_directory_or_pattern_holding_one_is_an_error_not_a_shorter_corpus(short_dir, kind):
    (short_dir / "a.txt").write_text("Some text.\n", encoding="utf-8")
    path, what = make_special(kind, short_dir)
    name = re.escape(str(path)) if kind != "loop-of-two" else f"{re.escape(str(short_dir))}/(loop-of-two|other)"
    with pytest.raises(CorpusError, match=f"^corpus directory {re.escape(str(short_dir))}: {name} {re.escape(what)}"):
        resolve_files(short_dir)
    with pytest.raises(CorpusError, match=f"^corpus pattern .*: {name} {re.escape(what)}"):
        resolve_files(str(short_dir / "*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_files_and_directories_are_named(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Text.\n", encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text("More.\n", encoding="utf-8")
    try:
        (corpus / "a.txt").chmod(0)
        with pytest.raises(CorpusError, match=r"a.txt cannot be read \(permission denied\); `chmod u\+r"):
            resolve_files(corpus / "a.txt")
        (corpus / "a.txt").chmod(0o644)
        (corpus / "sub").chmod(0)
        with pytest.raises(CorpusError, match=r"^corpus directory \S+/corpus/sub cannot be read \(permission denied\)"):
            resolve_files(corpus)  # not a corpus without sub's files
        with pytest.raises(CorpusError, match=r"^corpus directory \S+/sub cannot be read \(permission denied\); `chmod"):
            resolve_files(corpus / "sub")
        with pytest.raises(CorpusError, match=r"sub/b.txt cannot be reached \(permission denied"):
            resolve_files(corpus / "sub" / "b.txt")
    finally:
        (corpus / "sub").chmod(0o755)
        (corpus / "a.txt").chmod(0o644)

