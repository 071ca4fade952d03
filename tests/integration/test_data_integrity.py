"""Issue 24, the core side: corpora and task files that must not lose or invent data, a
corpus cache keyed on content, messages that name the real cause, stale leases, and the
two warm-start recipes for a longer position table."""
import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.data.corpus import CorpusError, CorpusReport, fingerprint, iter_documents, resolve_files
from core.data.tokenizer import MAX_SENTENCE_BYTES, TokenizerError
from core.finetune import TaskError, load_task
from core.interop import export_arm, load_arm, warm_start
from core.lease import Lease
from core.train import TrainConfig, Trainer
from tests import ROOT
from variants import build_model


# -- item 6: WikiExtractor documents without </doc> -------------------------------------------------------
def wiki(docs: list[tuple[str, bool]]) -> str:
    """WikiExtractor text: (body, closed) per document, the title on the tag's next line."""
    out = []
    for i, (body, closed) in enumerate(docs, 1):
        out.append(f'<doc id="{i}" url="https://x/{i}" title="T{i}">\nT{i}\n{body}\n' + ("</doc>\n" if closed else ""))
    return "".join(out)


def test_unclosed_wikiextractor_documents_are_recovered_and_counted(tmp_path):
    path = tmp_path / "wiki_00"
    path.write_text(wiki([(f"Doc {i} first sentence. Doc {i} second sentence.", i not in (2, 4))
                          for i in range(1, 5)]), encoding="utf-8")
    report = CorpusReport()
    docs = list(iter_documents([path], report))
    assert docs == [[f"Doc {i} first sentence.", f"Doc {i} second sentence."] for i in range(1, 5)]
    assert (report.documents, report.unclosed_docs, report.skipped_lines) == (4, 2, 0)
    assert report.first_unclosed == f"{path}:5"  # doc 2's <doc line, closed by doc 3's


def test_the_data_statistics_name_unclosed_documents(tmp_path):
    from core.data.builtin_corpus import iter_builtin_documents

    bodies = ["\n".join(doc) for _, doc in zip(range(40), iter_builtin_documents())]
    path = tmp_path / "wiki_00"
    path.write_text(wiki([(b, i % 7 != 3) for i, b in enumerate(bodies)]), encoding="utf-8")
    stats = build_dataset(DataConfig(vocab_size=600, max_length=64, dupe_factor=1, max_eval_examples=16),
                          path, tmp_path / "cache").stats()
    assert (stats["documents"], stats["unclosed_docs"], stats["skipped_lines"]) == (40, 6, 0)
    assert stats["first_unclosed"].startswith(f"{path}:")


# -- item 7: a TSV row with a tab inside a text field ---------------------------------------------------------
def test_a_row_with_more_fields_than_the_header_is_an_error_naming_its_line(tmp_path):
    header = "id\tsentence1\tsentence2\tlabel"
    good = ["1\ta cat\ta dog\tyes", "2\tx\ty\tno"]
    for name in ("dev.tsv", "test.tsv"):
        (tmp_path / name).write_text("\n".join([header, *good]) + "\n", encoding="utf-8")
    # a blank line, then a row whose second sentence holds a tab: its label column reads "dog"
    (tmp_path / "train.tsv").write_text("\n".join([header, good[0], "", "3\ta\tthe\tdog\tyes", good[1]]) + "\n",
                                        encoding="utf-8")
    spec = f"tsv:{tmp_path}:text_a=sentence1,text_b=sentence2,label=label"
    with pytest.raises(TaskError, match=r"train\.tsv:4: 5 fields, the header has 4"):
        load_task(spec)
    (tmp_path / "train.tsv").write_text("\n".join([header, *good]) + "\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("\n".join([header, *good, "3\ta\tb\tyes\t"]) + "\n", encoding="utf-8")
    with pytest.raises(TaskError, match=r"test\.tsv:4: 5 fields, the header has 4"):
        load_task(spec)
    (tmp_path / "test.tsv").write_text("\n".join([header, *good]) + "\n", encoding="utf-8")
    assert load_task(spec).classes == ["no", "yes"]


# -- item 9: the corpus fingerprint is its content -----------------------------------------------------------
def test_the_corpus_fingerprint_follows_content_not_mtime_or_place(tmp_path):
    corpus = tmp_path / "a" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "one.txt").write_text("First line of text.\n", encoding="utf-8")
    big = random.Random(0).randbytes(5 << 20)
    (corpus / "two.txt").write_bytes(big)
    before = fingerprint(resolve_files(corpus))

    copy = tmp_path / "b" / "corpus"
    shutil.copytree(corpus, copy)  # new mtimes, same bytes, another place
    assert fingerprint(resolve_files(copy)) == before

    one = corpus / "one.txt"
    st = one.stat()
    one.write_text("Other line of text.\n", encoding="utf-8")   # same size ...
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns))         # ... and `touch -d` restores the mtime
    assert one.stat().st_size == st.st_size and one.stat().st_mtime_ns == st.st_mtime_ns
    changed = fingerprint(resolve_files(corpus))
    assert changed != before

    two = copy / "two.txt"
    st = two.stat()
    two.write_bytes(big[:-10] + b"0123456789")                  # the last MiB of a large file
    os.utime(two, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint(resolve_files(copy)) not in (before, changed)
    (copy / "two.txt").rename(copy / "two.jsonl")                # a name decides the format: it counts
    assert fingerprint(resolve_files(copy)) != before


def test_the_data_command_sees_a_same_size_same_mtime_edit(tmp_path, corpus_file):
    path = tmp_path / "prose.txt"
    shutil.copyfile(corpus_file, path)
    cfg = DataConfig(vocab_size=600, max_length=64, dupe_factor=1, max_eval_examples=16)
    first = build_dataset(cfg, path, tmp_path / "cache").stats()
    st = path.stat()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n\n", "\n.", 5), encoding="utf-8")  # five documents fewer, same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert build_dataset(cfg, path, tmp_path / "cache").stats()["documents"] == first["documents"] - 5


# -- item 11: messages that name the real cause ---------------------------------------------------------------
def test_a_line_too_long_for_sentencepiece_names_its_file_line_and_the_limit(tmp_path, cache_dir):
    path = tmp_path / "long.txt"
    path.write_text("가나다라마바사" * (MAX_SENTENCE_BYTES // 10) + "\n", encoding="utf-8")  # ~2x the limit
    with pytest.raises(TokenizerError) as err:
        build_dataset(DataConfig(vocab_size=600, max_length=64), path, cache_dir)
    msg = str(err.value)
    assert "\n" not in msg and "sentences_" not in msg
    assert f"{path}:1" in msg and f"{MAX_SENTENCE_BYTES} bytes" in msg and "max_sentence_length" in msg
    assert "one per line" in msg


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"),
                                            ("utf-16-be", "UTF-16BE")])
def test_utf16_text_is_called_utf16_with_the_iconv_fix(tmp_path, encoding, name):
    path = tmp_path / "text.txt"
    path.write_bytes(("한국어 문장입니다. Some English too.\n" * 20).encode(encoding))
    with pytest.raises(CorpusError) as err:
        list(iter_documents([path]))
    msg = str(err.value)
    assert f"{path} is {name} text" in msg and f"iconv -f {name} -t UTF-8 {path} > {path}.utf8" in msg
    assert "binary" not in msg


def test_a_binary_file_is_still_called_binary(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(random.Random(1).randrange(256) if i % 3 else 0 for i in range(4096)))
    with pytest.raises(CorpusError, match="is a binary file"):
        list(iter_documents([path]))


LEASE_HOLDER = ("import sys, os; from core.lease import Lease\n"
                "lease = Lease(sys.argv[1], ttl_s=3600); assert lease.acquire(); print('held', flush=True)\n"
                "sys.stdin.readline() if sys.argv[2] == 'wait' else os._exit(0)  # exit without release\n")


def test_a_dead_holder_on_this_host_frees_its_lease_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LEASE_HOLDER, str(tmp_path), "die"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "held" and (tmp_path / "lease.json").is_file()
    mine = Lease(tmp_path, ttl_s=3600)
    assert mine.acquire()  # the holder's pid is gone: no hour's wait
    mine.release()

    live = subprocess.Popen([sys.executable, "-c", LEASE_HOLDER, str(tmp_path), "wait"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "held"
        assert not Lease(tmp_path, ttl_s=3600).acquire()  # a live holder keeps it
    finally:
        live.communicate("\n", timeout=60)


def test_a_dead_pid_on_another_host_is_left_to_the_ttl(tmp_path):
    (tmp_path / "lease.json").write_text(json.dumps({"holder": "elsewhere:1:x", "host": "elsewhere-host-x",
                                                     "pid": 2 ** 22 + 12345, "since": 0}))
    assert not Lease(tmp_path, ttl_s=3600).acquire()


def tiny_tokenizer(path: Path) -> Path:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([f"hello world this is a test sentence number {i}" for i in range(200)]),
        model_writer=buf, vocab_size=40, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece="[PAD]",
        unk_piece="[UNK]", control_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("fmt", ["native", "hf"])
def test_a_truncated_weights_file_is_named_with_the_fix(tmp_path, fmt):
    if fmt == "hf":
        pytest.importorskip("transformers")
    out = tmp_path / "exported"
    export_arm(build_model("bert", size="tiny", vocab_size=40), tiny_tokenizer(tmp_path / "sp.model"), out, fmt)
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    with pytest.raises(ValueError) as err:
        load_arm(out)
    msg = str(err.value)
    assert "\n" not in msg and str(weights) in msg and "truncated or corrupt" in msg and "re-export" in msg


# -- item 13: two recipes for a longer position table --------------------------------------------------------
def test_warm_start_positions_repeat_or_random(tmp_path):
    source = build_model("roberta", size="tiny", vocab_size=40, max_position_embeddings=64)
    src = source.state_dict()
    name = "embeddings.position.weight"

    repeated = build_model("roberta-lsh", size="tiny", vocab_size=40, max_position_embeddings=160, lsh_bucket_size=16)
    report = warm_start(repeated, source)  # the default: Longformer's repetition
    assert torch.equal(repeated.state_dict()[name][2 + 70], src[name][2 + 70 % 64])
    assert "extended by repeating the learned positions" in report.line()

    fresh = build_model("roberta-lsh", size="tiny", vocab_size=40, max_position_embeddings=160, lsh_bucket_size=16)
    init = fresh.state_dict()[name].clone()
    report = warm_start(fresh, source, positions="random")  # KoBigBird's: a new table, nothing loaded
    assert torch.equal(fresh.state_dict()[name], init)
    assert torch.equal(fresh.state_dict()["embeddings.word.weight"], src["embeddings.word.weight"])
    line = report.line()
    assert "repeating" not in line and f"{name} (66 -> 162 rows) left at its random initialisation" in line

    with pytest.raises(ValueError, match="position recipe 'tile'.* Valid choices: random, repeat"):
        warm_start(fresh, source, positions="tile")
    with pytest.raises(ValueError, match="init_positions 'copy'.* Valid choices: random, repeat"):
        TrainConfig(max_steps=1, init_positions="copy")


def test_the_trainer_warm_starts_with_the_configured_positions(small_data, tmp_path):
    source = build_model("roberta", size="tiny", vocab_size=600, max_position_embeddings=64)
    export_arm(source, small_data.tokenizer.path, tmp_path / "src", "native")
    fresh = build_model("roberta-lsh", size="tiny", vocab_size=600, max_position_embeddings=160, lsh_bucket_size=16)
    init = fresh.state_dict()["embeddings.position.weight"].clone()
    cfg = TrainConfig(max_steps=1, device="cpu", init_from=str(tmp_path / "src"), init_positions="random")
    line = Trainer(fresh, small_data, cfg, progress_bar=False).warm_start()
    assert "left at its random initialisation" in line
    assert torch.equal(fresh.state_dict()["embeddings.position.weight"], init)
