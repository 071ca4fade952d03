"""`list` and `show`: the catalogue of ablations and variants, read without training anything."""
from __future__ import annotations

import argparse

from rich.table import Table

from ablations.cli.console import console


def add_list(sub, fmt: dict) -> None:
    sub.add_parser("list", help="ablations and variants, one line each", **fmt).set_defaults(fn=run_list)


def add_show(sub, fmt: dict) -> None:
    s = sub.add_parser("show", help="the arms of an ablation and what each changes", **fmt)
    s.add_argument("name")
    s.set_defaults(fn=run_show)


def run_list(args: argparse.Namespace) -> None:
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


def run_show(args: argparse.Namespace) -> None:
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
        t.add_row(arm.name, *_against(spec, arm), arm.description)
    console.print(t)
    for e in spec.expectations:
        console.print(f"expects: {e.claim} [{e.arm} {e.metric} {e.direction}] ({e.source})")


def _against(spec, arm) -> tuple[str, str]:
    """(the arm it is compared with, what it changes against that arm)."""
    ref = spec.reference_of(arm)
    if ref is None:
        return "–", "(the base: " + (spec.base + ")")
    mine, theirs = dict(arm.overrides), dict(ref.overrides)
    changes = ", ".join([f"{k}={v!r}" for k, v in mine.items() if theirs.get(k, object()) != v]
                        + [f"{k} as in the base" for k in theirs if k not in mine])
    return ref.name, changes
