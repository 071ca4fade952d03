"""`export` and `finetune`: a finished arm's kept weights, written out or fine-tuned."""
from __future__ import annotations

import argparse
import json

from rich.markup import escape

from ablations.cli.console import console

ARM_HELP = "an arm of the run: ARM (its first seed, seed 0 unless the run began at --seed K) or ARM@K (seed K)"
TASK_HELP = ("korsts, question_pair, klue-ner, klue-nli, korquad, klue-ner:FILE, klue-nli:FILE, korquad:FILE (SQuAD's "
             "JSON layout) or tsv:DIR:text_a=COL,text_b=COL,label=COL,kind=classification|pair-classification|"
             "pair-regression; comma-separated for several tasks")


def add_export(sub, fmt: dict) -> None:
    e = sub.add_parser("export", help="write a finished arm (weights + tokenizer) to a directory: HF or native", **fmt)
    e.add_argument("run_dir")
    e.add_argument("arm", help=ARM_HELP)
    e.add_argument("--seed", type=int, help="which seed's weights (default: the arm's first seed; or ARM@K)")
    e.add_argument("--format", default="auto", choices=["auto", "hf", "native"],
                   help="hf: transformers' AutoModel/AutoTokenizer/pipeline load it; native: every arm "
                        "(variants.load); auto: hf where transformers can hold the arm")
    e.add_argument("--out", required=True, help="the directory to write (an earlier export there is replaced)")
    e.set_defaults(fn=run_export)


def add_finetune(sub, fmt: dict) -> None:
    f = sub.add_parser("finetune", help="fine-tune a finished arm on downstream tasks and print test scores", **fmt)
    f.add_argument("run_dir", help="a run directory (or a directory holding exported arms)")
    f.add_argument("arm", help=ARM_HELP)
    f.add_argument("--seed", type=int, dest="arm_seed", help="the pretraining seed whose weights are fine-tuned "
                                                             "(default: the arm's first; or ARM@K); --seeds counts "
                                                             "fine-tuning seeds")
    f.add_argument("--task", required=True, help=TASK_HELP)
    f.add_argument("--steps", type=int, default=300, help="fine-tuning steps per seed (default 300)")
    f.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds: mean ± standard error (default 3)")
    f.add_argument("--eval-every", type=int, default=0, help="steps between dev evaluations (default: a fifth)")
    f.add_argument("--max-length", type=int, default=128, help="tokens per example, specials included")
    f.add_argument("--device", default="auto")
    f.add_argument("--json", action="store_true", help="one JSON object per task")
    f.set_defaults(fn=run_finetune)


def run_export(args: argparse.Namespace) -> None:
    from ablations.run.weights import export_run_arm

    result, kept = export_run_arm(args.run_dir, args.arm, args.format, args.out, seed=args.seed)
    console.print(f"exported {escape(str(kept))} to {escape(str(result.path))} in [bold]{result.format}[/bold] format: "
                  f"{escape(result.reason)}")  # a reason may hold [hf], which rich would take for markup


def run_finetune(args: argparse.Namespace) -> None:
    from ablations.run.weights import finetune_run_arm
    from core.finetune import split_tasks

    tasks = split_tasks(args.task)
    for summary in finetune_run_arm(args.run_dir, args.arm, tasks, args.steps, args.seeds, args.device,
                                    seed=args.arm_seed, eval_every=args.eval_every, max_length=args.max_length):
        if args.json:
            print(json.dumps(summary.to_dict()))
        else:
            console.print(f"{args.arm}: {summary}")
