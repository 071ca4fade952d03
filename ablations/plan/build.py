"""The plan of a run: its settings, the corpus, and every (arm, seed) unit resolved to configs.

Every arm is resolved here, before any data is built or any arm trains, so that a typo or
a conflict in one arm's configuration stops the whole run at once with one line naming
the arm and the field (exit 2), instead of after other arms have trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.plan.ladder import rung_budgets
from ablations.plan.options import RunOptions
from ablations.plan.resolve import ResolvedArm, pair_eval_sets, resolve_arm
from ablations.plan.selection import is_partial, select_arms
from ablations.plan.settings import RunSettings, settle
from ablations.rundir import arm_path_problem, default_run_dir
from ablations.specs import AblationSpec, Arm
from core.data import corpus_source, vocab_for_corpus
from core.extras import MissingExtra
from core.train import Budget


@dataclass(frozen=True)
class Unit:
    """One (arm, seed) to train: its log heading and its configs."""
    head: str
    arm: Arm
    resolved: ResolvedArm

    @property
    def seed(self) -> int:
        return self.resolved.seed

    @property
    def banner(self) -> str:
        """The line the runner prints as the unit starts: heading, and what was built."""
        return f"{self.head}: {self.resolved.described}"


@dataclass
class Plan:
    spec: AblationSpec
    opts: RunOptions
    settings: RunSettings
    corpus: Any = None                                  # core.data's CorpusSource (training ablations)
    units: list[Unit] = field(default_factory=list)     # every (arm, seed) of the ablation, seeds outermost
    selected: list[Arm] = field(default_factory=list)   # the arms this process trains (--arms, --shard)

    rates: dict[str, tuple[float, str]] = field(default_factory=dict)  # arm -> (rate, why): --lr-search's choice

    @property
    def run_dir(self) -> Path:
        return Path(self.opts.out) if self.opts.out else default_run_dir(self.spec.name)

    @property
    def partial(self) -> bool:
        return is_partial(self.opts)

    @property
    def trained(self) -> list[Unit]:
        return [u for u in self.units if u.arm in self.selected]

    def spec_json(self) -> dict[str, Any]:
        """spec.json: what the ablation is and how it was run, for the report."""
        first = self.units[0].resolved.train if self.units else None
        budget = Budget.of(first).fields() if first is not None else {}
        o = self.opts
        ladder = {"rungs": o.ladder, "ratio": o.ladder_ratio,
                  "budgets": rung_budgets(budget, o.ladder, o.ladder_ratio)} if o.ladder else None
        return {**self.spec.to_json(), "options": self.settings.to_json(), "budget_per_arm": budget,
                "budget_kind": Budget.of(budget).kind if budget else self.settings.budget.kind,
                "corpus": self.corpus.name if self.corpus else None, "seeds": o.seed_list, "ladder": ladder}


def make_plan(spec: AblationSpec, opts: RunOptions, rates: dict[str, tuple[float, str]] | None = None) -> Plan:
    """rates: arm -> (rate, why), the rates an --lr-search chose (the arms' own otherwise)."""
    settings = settle(spec, opts)
    plan = Plan(spec, opts, settings, selected=select_arms(spec, opts), rates=dict(rates or {}))
    if spec.kind == "bench":
        return plan
    plan.corpus = corpus_source(opts.corpus, opts.text_column, opts.sentence_splitter)
    if opts.quick and opts.vocab_size is None:
        # a smoke test's vocabulary sized to the corpus's characters: Korean needs about
        # 3,000 pieces at SentencePiece's default coverage, far more than --quick's 500
        plan.settings = settings = settings.with_vocab(vocab_for_corpus(plan.corpus, settings.vocab_size))
    plan.units = _resolve_units(spec, opts, settings, plan.corpus.fingerprint, plan.rates)
    pair_eval_sets([u.resolved for u in plan.units],
                   {u.seed: u.resolved for u in plan.units if u.arm is spec.base_arm})
    return plan


def _resolve_units(spec: AblationSpec, opts: RunOptions, settings: RunSettings, corpus_fp: str,
                   rates: dict[str, tuple[float, str]]) -> list[Unit]:
    """Every (seed, arm); a time budget is split equally among the distinct configurations."""
    def resolve(n_trained: int) -> list[Unit]:
        units, errors = [], []
        for seed in opts.seed_list:
            for i, arm in enumerate(spec.arms, 1):
                head = f"[{i}/{len(spec.arms)}] {arm.name}" + (f" seed {seed}" if opts.seeds > 1 else "")
                if problem := arm_path_problem(arm.name):
                    errors.append(f"{arm.name[:40]}{'…' if len(arm.name) > 40 else ''}: {problem}")
                    continue
                try:
                    res = resolve_arm(spec, arm, settings, opts, corpus_fp, n_trained, seed, rates.get(arm.name))
                    units.append(Unit(head, arm, res))
                except MissingExtra:
                    raise  # not the arm's configuration: the install's, named in its own line
                except (ValueError, TypeError) as err:
                    errors.append(f"{arm.name}: {' '.join(str(err).split())}")
        if errors:
            unique = list(dict.fromkeys(errors))  # every seed repeats the same configuration error
            raise ValueError(f"invalid configuration in {len(unique)} arm(s) of {spec.name!r}, nothing trained: "
                             + "; ".join(unique))
        return units

    units = resolve(1)
    if settings.budget.max_seconds:
        units = resolve(max(1, len({u.resolved.key for u in units})))
    return units
