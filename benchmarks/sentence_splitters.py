"""Regex vs kss on a corpus: sentences per document, NSP/SOP pairs built, build time.

    python benchmarks/sentence_splitters.py CORPUS [CACHE_PREFIX]
(the figures of docs/findings/2026-12-01-sentence-splitters.md: two kowiki files, `mkdir k2; cp ../shared/data/kowiki/wiki_0[01] k2/`)
"""
import statistics
import sys
import time

from core.data import DataConfig, build_dataset, corpus_source
from core.data.corpus import CorpusReport

corpus = sys.argv[1]
prefix = sys.argv[2] if len(sys.argv) > 2 else "/tmp/splitter-cache"
for splitter in ("regex", "kss"):
    src = corpus_source(corpus, sentence_splitter=splitter)
    t0 = time.perf_counter()
    docs = list(src.documents(CorpusReport()))
    split_s = time.perf_counter() - t0
    per_doc = [len(d) for d in docs]
    row = {"splitter": splitter, "docs": len(docs), "sentences": sum(per_doc),
           "sent_per_doc_mean": round(statistics.fmean(per_doc), 2), "sent_per_doc_median": statistics.median(per_doc),
           "split_s": round(split_s, 1)}
    for packing, task in (("segment-pair", "nsp"), ("segment-pair", "sop"), ("sentence-pair", "nsp")):
        cfg = DataConfig(vocab_size=8000, max_length=128, dupe_factor=1, packing=packing, sentence_task=task,
                         sentence_splitter=splitter)
        t0 = time.perf_counter()
        data = build_dataset(cfg, corpus, f"{prefix}-{splitter}")
        row[f"{packing}/{task}_train_examples"] = len(data.train)
        row[f"{packing}/{task}_build_s"] = round(time.perf_counter() - t0, 1)
        row[f"{packing}/{task}_label_balance"] = data.stats()["sentence_label_balance"]
    print(row, flush=True)
