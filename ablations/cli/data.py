"""`data`: build (or reuse) the examples of a corpus and print their statistics."""
from __future__ import annotations

import argparse
import json

from rich.table import Table

from ablations.cli.console import console


def add_data(sub, fmt: dict) -> None:
    d = sub.add_parser("data", help="build (or reuse) examples and print their statistics", **fmt)
    d.add_argument("--corpus", help="file, directory or glob: text, WikiExtractor, JSON lines, ko_lm_dataformat "
                                    "(.jsonl.zst), Parquet or a datasets.save_to_disk directory; default: built in")
    d.add_argument("--packing", choices=["segment-pair", "sentence-pair", "full-sentences", "doc-sentences"])
    d.add_argument("--sentence-task", choices=["none", "nsp", "sop"])
    d.add_argument("--masking", choices=["static", "dynamic"])
    d.add_argument("--mask-unit", choices=["token", "whole-word", "ngram"])
    d.add_argument("--max-length", type=int)
    d.add_argument("--vocab-size", type=int)
    d.add_argument("--dupe-factor", type=int)
    d.add_argument("--seed", type=int)
    d.add_argument("--tokenizer", help="an existing SentencePiece .model to use instead of training one")
    d.add_argument("--text-column", help="the text column of a Parquet / datasets / JSON-lines corpus (default text)")
    d.add_argument("--sentence-splitter", choices=["regex", "kss"])
    d.add_argument("--cache-dir", help="default $BERT_ABLATE_CACHE or ~/.cache/bert-ablate")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(fn=run_data)


def run_data(args: argparse.Namespace) -> None:
    from core.data import DataConfig, build_dataset

    fields = {k: v for k, v in {
        "packing": args.packing, "sentence_task": args.sentence_task, "masking": args.masking,
        "mask_unit": args.mask_unit, "max_length": args.max_length, "vocab_size": args.vocab_size,
        "dupe_factor": args.dupe_factor, "seed": args.seed, "tokenizer_path": args.tokenizer,
        "text_column": args.text_column, "sentence_splitter": args.sentence_splitter}.items() if v is not None}
    data = build_dataset(DataConfig(**fields), args.corpus, args.cache_dir)
    stats = data.stats()
    if args.json:
        print(json.dumps(stats))
        return
    t = Table(title=f"data: {stats['corpus']}")
    t.add_column("statistic"), t.add_column("value", justify="right")
    for k, v in stats.items():
        if k != "corpus":
            t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(t)
    console.print(f"tokenizer: {data.tokenizer.path}")
