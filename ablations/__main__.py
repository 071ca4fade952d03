"""python -m ablations {list, show, run, report, bench, data, export, finetune}"""
from __future__ import annotations

import argparse
import json
import sys
import warnings

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich_argparse import RawDescriptionRichHelpFormatter

console = Console()
err_console = Console(stderr=True)

EPILOG = """examples:
  python -m ablations list
  python -m ablations show albert_reformer
  python -m ablations run albert_reformer                   # built-in corpus, CPU-sized budget
  python -m ablations run attention --corpus ../shared/data/kowiki --seq-len 2048 --time-budget 30m
  python -m ablations run my_ablation.toml --quick
  python -m ablations report runs/albert_reformer
  python -m ablations report runs/attention --x flops        # eval-loss curves against training FLOPs
  python -m ablations bench memory --variants bert,reformer --seq-lens 512,1024,2048
  python -m ablations data --corpus ../shared/data/kowiki --masking dynamic --json
  python -m ablations run albert_reformer --downstream korsts,question_pair --downstream-steps 300
  python -m ablations run objective --tokens 400000 --ladder 4       # each arm at 4 budgets: where curves cross
  python -m ablations export runs/albert_reformer bert --format hf --out exported/bert
  python -m ablations finetune runs/albert_reformer bert --task korsts --seeds 3
"""


def _cmd_list(args) -> None:
    from ablations.specs import ABLATIONS
    from variants import SIZES, VARIANTS

    t = Table(title="ablations (python -m ablations run NAME)")
    t.add_column("name"), t.add_column("arms"), t.add_column("what it shows")
    for s in ABLATIONS.values():
        n = f"{len(s.bench_variants)} variants" if s.kind == "bench" else str(len(s.arms))
        t.add_row(s.name, n, s.description)
    console.print(t)
    t = Table(title=f"variants (build_model(name, size=...); sizes: {', '.join(SIZES)})")
    t.add_column("name"), t.add_column("description")
    for v in VARIANTS.values():
        t.add_row(v.name, v.description)
    console.print(t)


def _cmd_show(args) -> None:
    from ablations.specs import get_ablation

    spec = get_ablation(args.name)
    console.print(f"[bold]{spec.name}[/bold]: {spec.description}")
    console.print(f"base variant: {spec.base}; base overrides: {dict(spec.base_overrides) or 'none'}")
    console.print(f"CPU budget (the default): {dict(spec.defaults) or 'the runner defaults'}")
    if spec.gpu_budget:
        gpu = {k: v for k, v in spec.gpu_budget.items() if k != "why"}
        console.print(f"GPU budget (--budget gpu), where the effect is expected to show: {gpu}; "
                      f"{spec.gpu_budget.get('why', '')}")
    if spec.kind == "bench":
        console.print(f"measures {', '.join(spec.bench_variants)} at {list(spec.bench_seq_lens)} tokens")
        return
    t = Table()
    t.add_column("arm"), t.add_column("compared with"), t.add_column("changes against that arm"),
    t.add_column("description")
    for arm in spec.arms:
        ref = spec.reference_of(arm)
        if ref is None:
            changes = "(the base: " + (spec.base + ")")
        else:
            mine, theirs = dict(arm.overrides), dict(ref.overrides)
            changes = ", ".join([f"{k}={v!r}" for k, v in mine.items() if theirs.get(k, object()) != v]
                                + [f"{k} as in the base" for k in theirs if k not in mine])
        t.add_row(arm.name, ref.name if ref else "–", changes, arm.description)
    console.print(t)
    for e in spec.expectations:
        console.print(f"expects: {e.claim} [{e.arm} {e.metric} {e.direction}] ({e.source})")


def _options(args):
    from ablations.plan import RunOptions, parse_duration

    return RunOptions(corpus=args.corpus, size=args.size, steps=args.steps, tokens=args.tokens,
                      time_budget=parse_duration(args.time_budget) if args.time_budget is not None else None,
                      seq_len=args.seq_len, batch_size=args.batch_size, device=args.device, seed=args.seed,
                      seeds=args.seeds, out=args.out, quick=args.quick, vocab_size=args.vocab_size, lr=args.lr,
                      keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress, budget=args.budget,
                      compile=args.compile, arms=args.arms, shard=args.shard,
                      nproc_per_node=args.nproc_per_node, workers=args.workers, ladder=args.ladder, ladder_ratio=args.ladder_ratio,
                      flops=args.flops, precision=args.precision,
                      lr_search=args.lr_search, lr_grid=args.lr_grid, lr_search_fraction=args.lr_search_fraction,
                      log_to=args.log_to, text_column=args.text_column, sentence_splitter=args.sentence_splitter)


def _cmd_run(args) -> int:
    """The route of a run: spec, plan (every arm resolved), run (every unit trained), then
    the report rendered from the run directory alone."""
    from ablations.plan import make_plan
    from ablations.report import render_report
    from ablations.run import run_plan
    from ablations.rundir import BENCH, RESULTS
    from ablations.specs import get_ablation

    plan = make_plan(get_ablation(args.name), _with_downstream(_options(args), args))
    summary = run_plan(plan, console)
    if (summary.out / RESULTS).is_file() or (summary.out / BENCH).is_file():
        render_report(summary.out, console)
    if args.debug:
        for log in summary.error_logs:
            print(f"--- {log}\n{log.read_text(encoding='utf-8')}", file=sys.stderr)
    return _exit_code(summary.errors, f"{summary.out}/report.md (with the .jsonl, .csv and plots beside it)")


def _exit_code(errors: list[str], where: str) -> int:
    """Exit 0 when every unit ended as a result (ok, oom, nan), 1 when any ended in error."""
    if errors:
        for line in errors:
            print(f"error: {' '.join(line.split())}", file=sys.stderr)
        print(f"{len(errors)} failed; the others are in {where}", file=sys.stderr)
        return 1
    console.print(f"[bold green]done[/bold green]: {where}")
    return 0


def _with_downstream(opts, args):
    """--downstream tasks, read and checked before any pretraining starts."""
    if not args.downstream:
        return opts
    from dataclasses import replace

    from ablations.run.downstream import load_tasks
    from core.finetune import split_tasks

    tasks = tuple(split_tasks(args.downstream))
    load_tasks(tasks)
    return replace(opts, downstream=tasks, downstream_steps=args.downstream_steps,
                   downstream_seeds=args.downstream_seeds)


ARM_HELP = "an arm of the run: ARM (its first seed, seed 0 unless the run began at --seed K) or ARM@K (seed K)"


def _cmd_export(args) -> None:
    from ablations.run.weights import export_run_arm

    result, kept = export_run_arm(args.run_dir, args.arm, args.format, args.out, seed=args.seed)
    console.print(f"exported {escape(str(kept))} to {escape(str(result.path))} in [bold]{result.format}[/bold] format: "
                  f"{escape(result.reason)}")  # a reason may hold [hf], which rich would take for markup


def _cmd_finetune(args) -> None:
    from ablations.run.weights import finetune_run_arm
    from core.finetune import split_tasks

    tasks = split_tasks(args.task)
    for summary in finetune_run_arm(args.run_dir, args.arm, tasks, args.steps, args.seeds, args.device,
                                    seed=args.arm_seed, eval_every=args.eval_every, max_length=args.max_length):
        if args.json:
            print(json.dumps(summary.to_dict()))
        else:
            console.print(f"{args.arm}: {summary}")


def _add_artefact_commands(sub, fmt: dict) -> None:
    e = sub.add_parser("export", help="write a finished arm (weights + tokenizer) to a directory: HF or native", **fmt)
    e.add_argument("run_dir")
    e.add_argument("arm", help=ARM_HELP)
    e.add_argument("--seed", type=int, help="which seed's weights (default: the arm's first seed; or ARM@K)")
    e.add_argument("--format", default="auto", choices=["auto", "hf", "native"],
                   help="hf: transformers' AutoModel/AutoTokenizer/pipeline load it; native: every arm "
                        "(variants.load); auto: hf where transformers can hold the arm")
    e.add_argument("--out", required=True, help="the directory to write (an earlier export there is replaced)")
    e.set_defaults(fn=_cmd_export)
    f = sub.add_parser("finetune", help="fine-tune a finished arm on downstream tasks and print test scores", **fmt)
    f.add_argument("run_dir", help="a run directory (or a directory holding exported arms)")
    f.add_argument("arm", help=ARM_HELP)
    f.add_argument("--seed", type=int, dest="arm_seed", help="the pretraining seed whose weights are fine-tuned "
                                                             "(default: the arm's first; or ARM@K); --seeds counts "
                                                             "fine-tuning seeds")
    f.add_argument("--task", required=True, help="korsts, question_pair, klue-ner, klue-nli, klue-ner:FILE, "
                                                 "klue-nli:FILE or tsv:DIR:text_a=COL,text_b=COL,label=COL,"
                                                 "kind=classification|pair-classification|pair-regression|"
                                                 "token-classification; "
                                                 "comma-separated for several built-in tasks")
    f.add_argument("--steps", type=int, default=300, help="fine-tuning steps per seed (default 300)")
    f.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds: mean ± standard error (default 3)")
    f.add_argument("--eval-every", type=int, default=0, help="steps between dev evaluations (default: a fifth)")
    f.add_argument("--max-length", type=int, default=128, help="tokens per example, specials included")
    f.add_argument("--device", default="auto")
    f.add_argument("--json", action="store_true", help="one JSON object per task")
    f.set_defaults(fn=_cmd_finetune)


def _add_downstream_flags(r) -> None:
    g = r.add_argument_group("downstream (fine-tune every finished arm; scores join its results row)")
    g.add_argument("--downstream", help="tasks, e.g. korsts,question_pair,klue-ner,klue-nli (../shared/data or "
                                        "$BERT_ABLATE_TASK_DATA), klue-ner:FILE, klue-nli:FILE or tsv:DIR:...")
    g.add_argument("--downstream-steps", type=int, default=300, help="fine-tuning steps per task (default 300)")
    g.add_argument("--downstream-seeds", type=int, default=1, help="fine-tuning seeds per task (default 1)")


def _cmd_report(args) -> None:
    from ablations.report import render_report

    render_report(args.dir, console, x=args.x)


def _cmd_bench(args) -> int:
    from pathlib import Path

    from ablations.plan import RunOptions
    from ablations.report import render_report
    from ablations.run.bench import run_bench
    from ablations.rundir import ensure_run_dir
    from core.device import limit_memory, parse_bytes

    seq_lens = _int_list(args.seq_lens, "--seq-lens", low=8)
    variants = [v for v in args.variants.split(",") if v]
    if args.tokens_per_batch < 1:
        raise ValueError(f"--tokens-per-batch must be >= 1, got {args.tokens_per_batch}")
    if args.memory_limit:
        limit_memory(parse_bytes(args.memory_limit))
    opts = RunOptions(device=args.device, quick=args.quick, vocab_size=args.vocab_size, compile=args.compile)
    out = Path(args.out or f"runs/bench-{args.mode}")
    ensure_run_dir(out)
    errors = run_bench(variants, seq_lens, args.mode, args.size, args.tokens_per_batch, opts, out, console)
    render_report(out, console)
    return _exit_code(errors, f"{out}/report.md")


def _int_list(text: str, flag: str, low: int) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, e.g. 512,1024,2048; got {text!r}") from None
    bad = [v for v in values if v < low]
    if not values or bad:
        raise ValueError(f"{flag} values must be >= {low}; got {text!r}")
    return values


def _cmd_data(args) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ablations", description="Compare BERT-family ideas fairly: "
                                "parameters, memory, speed and loss, one row per arm.", epilog=EPILOG,
                                formatter_class=RawDescriptionRichHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure instead of one line")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = {"formatter_class": RawDescriptionRichHelpFormatter}
    sub.add_parser("list", help="ablations and variants, one line each", **fmt).set_defaults(fn=_cmd_list)
    s = sub.add_parser("show", help="the arms of an ablation and what each changes", **fmt)
    s.add_argument("name")
    s.set_defaults(fn=_cmd_show)
    _add_run(sub.add_parser("run", help="run an ablation (a name or a .toml file)", epilog=EPILOG, **fmt))
    rep = sub.add_parser("report", help="re-render report.md, results.csv and plots from a run directory", **fmt)
    rep.add_argument("dir")
    rep.add_argument("--x", choices=["tokens", "flops", "seconds"], default="tokens",
                     help="the x axis of the held-out loss curves (eval_loss_vs_X.png; default tokens)")
    rep.set_defaults(fn=_cmd_report)
    _add_bench(sub.add_parser("bench", help="memory and/or throughput against sequence length, without training",
                              **fmt))
    _add_artefact_commands(sub, fmt)
    _add_data(sub.add_parser("data", help="build (or reuse) examples and print their statistics", **fmt))
    return p


def _add_run(r: argparse.ArgumentParser) -> None:
    r.add_argument("name", help="ablation name (see `list`) or path to a .toml spec")
    r.add_argument("--corpus", help="file, directory or glob (text, WikiExtractor, jsonl, .gz; ko_lm_dataformat, "
                                    "Parquet, datasets.save_to_disk); "
                                    "default: the built-in corpus (Python standard library docstrings)")
    r.add_argument("--size", help="tiny, mini, small, medium, base, large (default: mini)")
    budget = r.add_argument_group("budget per arm (the first reached stops an arm)")
    budget.add_argument("--budget", choices=["cpu", "gpu"], default="cpu",
                        help="the ablation's CPU budget (default) or the larger one at which its effect is "
                             "expected to show (see `show NAME`); flags below override either")
    budget.add_argument("--steps", type=int, help="optimizer steps per arm (>= 1)")
    budget.add_argument("--tokens", type=int, help="training tokens (non-padding) per arm (>= 1)")
    budget.add_argument("--time-budget", help="wall-clock for all arms together, split equally, e.g. 10m, 1h")
    budget.add_argument("--flops", type=float, help="training FLOPs per arm, e.g. 3e12: every arm gets the same "
                                                    "compute, counted per step by torch's FlopCounterMode on one "
                                                    "measured step (not with --steps/--tokens)")
    budget.add_argument("--ladder", type=int, default=0, metavar="K",
                        help="train every arm at K >= 3 budgets (the budget x ratio**-j), one row each, for about "
                             "the price of one run: a warmup-stable-decay run branched into K cooldowns")
    budget.add_argument("--ladder-ratio", type=float, default=2.0,
                        help="each ladder budget over the previous one (default 2)")
    r.add_argument("--text-column", default="text", help="Parquet, datasets.save_to_disk and JSON-lines corpora: "
                                                        "the column (field) holding the text (default text)")
    r.add_argument("--sentence-splitter", choices=["regex", "kss"], default="regex",
                   help="how documents are cut into sentences: regex (punctuation, the default) or kss "
                        "(Korean; pip install -e '.[kss]'); a cache built with one is never reused for the other")
    r.add_argument("--log-to", default="none",
                   help="log training while it runs to tensorboard, wandb and/or mlflow (comma-separated, as HF's "
                        "report_to; 'all', 'none'): RUN_DIR/tb, RUN_DIR/wandb (offline unless WANDB_MODE), "
                        "RUN_DIR/mlruns; pip install -e '.[track]'")
    r.add_argument("--seq-len", type=int, help="tokens per example (default 128; the attention ablation 512)")
    r.add_argument("--batch-size", type=int, help="examples per optimizer step (default 16)")
    r.add_argument("--vocab-size", type=int, help="SentencePiece vocabulary (default 8000)")
    r.add_argument("--lr", type=float, help="one peak learning rate for every arm (default: each arm's width rule, "
                                            "1e-3 x 128 / hidden size); warm-up then linear decay")
    r.add_argument("--lr-search", action="store_true",
                   help="each arm (first seed) at a grid of rates on part of the budget; every seed then trains "
                        "at the rate with the lowest held-out loss (search points in RUN_DIR/lr-search/)")
    r.add_argument("--lr-grid", help="--lr-search's rates as multiples of each arm's own (default 0.5,1,2)")
    r.add_argument("--lr-search-fraction", type=float, default=0.25,
                   help="the part of the budget each search point trains (default 0.25)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    r.add_argument("--seeds", type=int, default=1, help="train every arm with seeds seed, seed+1, ... (default 1); "
                                                      "a re-run adds the missing (arm, seed) pairs only")
    r.add_argument("--out", help="run directory (default runs/NAME); re-running resumes there")
    r.add_argument("--quick", action="store_true", help="tiny models and a few steps: a smoke test of the pipeline")
    r.add_argument("--keep-checkpoints", action="store_true", help="keep each finished arm's checkpoint")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--compile", action="store_true", help="torch.compile the models (eager fallback with a warning)")
    r.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="autocast precision: auto (bf16 on CUDA, fp32 on a CPU), bf16 or fp32")
    _add_downstream_flags(r)
    part = r.add_argument_group("distributed (README: \"Distributed and multi-machine\")")
    part.add_argument("--arms", help="train only these arms, comma-separated (others may run elsewhere)")
    part.add_argument("--shard", help="K/N: train only arm i (from 0, in the spec's order) with i %% N + 1 == K; "
                                      "N processes or machines on one run directory split the arms")
    part.add_argument("--workers", type=int, default=1,
                      help="train N arms at once on this machine, each with 1/N of the CPU threads (small models "
                           "on a CPU finish sooner side by side); timing and the report stay in one process")
    part.add_argument("--nproc-per-node", type=int, default=1,
                      help="train each arm on N torchrun ranks (DDP; --batch-size is split over them)")
    r.set_defaults(fn=_cmd_run)


def _add_bench(b: argparse.ArgumentParser) -> None:
    b.add_argument("mode", choices=["memory", "speed", "both"])
    b.add_argument("--variants", default="bert,reformer,albert-reformer")
    b.add_argument("--seq-lens", default="512,1024,2048,4096", help="comma-separated; measured in ascending order")
    b.add_argument("--size", default="mini")
    b.add_argument("--tokens-per-batch", type=int, default=8192, help="batch = tokens_per_batch // seq_len")
    b.add_argument("--vocab-size", type=int)
    b.add_argument("--device", default="auto")
    b.add_argument("--out", help="default runs/bench-MODE")
    b.add_argument("--memory-limit", help="cap the process's memory, e.g. 16G: longer sequences that do not fit "
                                          "are recorded as oom instead of swapping the machine")
    b.add_argument("--quick", action="store_true", help="one timed step per measurement")
    b.add_argument("--compile", action="store_true", help="time torch.compile'd models (eager fallback with a warning)")
    b.set_defaults(fn=_cmd_bench)


def _add_data(d: argparse.ArgumentParser) -> None:
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
    d.set_defaults(fn=_cmd_data)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_negative_values(sys.argv[1:] if argv is None else argv))
    shown = warnings.formatwarning
    if not args.debug:  # a warning is one line too (a skipped row, a fresh head), not a source line under it
        warnings.formatwarning = _one_line_warning
    try:
        return args.fn(args) or 0
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: finished arms are saved in results.jsonl; run the same "
                          "command again to resume (an unfinished arm resumes from its last checkpoint)")
        return 130
    except Exception as err:  # noqa: BLE001 - every user-facing failure is one line
        if getattr(args, "debug", False):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)  # plain print: one line, never wrapped
        return 2
    finally:
        warnings.formatwarning = shown


def _one_line_warning(message, category, *rest, **kw) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


NUMBER_FLAGS = ("--flops", "--lr", "--lr-search-fraction", "--tokens", "--steps", "--seed", "--seeds", "--ladder", "--ladder-ratio",
                "--batch-size", "--seq-len", "--vocab-size", "--workers", "--downstream-steps", "--downstream-seeds")


def _negative_values(argv: list[str]) -> list[str]:
    """`--flops -1e9` as `--flops=-1e9`: argparse takes "-1e9" for an option and says only
    "expected one argument"; joined, the value reaches the option's own check ("must be >= 1")."""
    out: list[str] = []
    for a in argv:
        if out and out[-1] in NUMBER_FLAGS and a.startswith("-") and _is_number(a):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def one_line(err: BaseException) -> str:
    """A failure as one line that names the file and the fix where it can."""
    if isinstance(err, OSError) and err.strerror:
        where = f" {err.filename}" if err.filename else ""
        return f"{err.strerror}:{where}" + {
            PermissionError: " (not writable or readable by you; choose another path)",
            IsADirectoryError: " (a directory where a file belongs)",
            NotADirectoryError: " (a file where a directory belongs)",
        }.get(type(err), "")
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (ValueError, FileNotFoundError, KeyError)):
        return text
    return f"{type(err).__name__}: {text} (run again with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
