"""The plan of a run: its settings, the corpus, and every (arm, seed) unit resolved to configs.

Every arm is resolved here, before any data is built or any arm trains, so that a typo or
a conflict in one arm's configuration stops the whole run at once with one line naming
the arm and the field (exit 2), instead of after other arms have trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.config import RunConfig, settle
from ablations.plan.ladder import rung_budgets
from ablations.plan.resolve import ResolvedArm, pair_eval_sets, resolve_arm
from ablations.plan.selection import is_partial, select_arms
from ablations.rundir import RATES, arm_path_problem, default_run_dir, read_json
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
    config: RunConfig                                   # settled: every shape and the budget filled in
    corpus: Any = None                                  # core.data's CorpusSource (training ablations)
    units: list[Unit] = field(default_factory=list)     # every (arm, seed) of the ablation, seeds outermost
    selected: list[Arm] = field(default_factory=list)   # the arms this process trains (--arms, --shard)

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self.spec, self.config)

    @property
    def partial(self) -> bool:
        return is_partial(self.config)

    @property
    def trained(self) -> list[Unit]:
        return [u for u in self.units if u.arm in self.selected]

    def spec_json(self) -> dict[str, Any]:
        """spec.json: what the ablation is and how it was run, for the report."""
        first = self.units[0].resolved.train if self.units else None
        budget = Budget.of(first).fields() if first is not None else {}
        c = self.config
        ladder = {"rungs": c.ladder, "ratio": c.ladder_ratio,
                  "budgets": rung_budgets(budget, c.ladder, c.ladder_ratio)} if c.ladder else None
        return {**self.spec.to_json(), "options": c.settled_json(), "budget_per_arm": budget,
                "budget_kind": Budget.of(budget).kind if budget else c.budget.kind,
                "corpus": self.corpus.name if self.corpus else None, "seeds": c.seed_list, "ladder": ladder}


def settled(spec: AblationSpec, asked: RunConfig) -> tuple[RunConfig, Any]:
    """The config settled against the spec, and the corpus it reads (None for a bench)."""
    config = settle(spec, asked)
    if spec.kind == "bench":
        return config, None
    corpus = corpus_source(config.corpus, config.text_column, config.sentence_splitter)
    if asked.quick and asked.vocab_size is None:
        # a smoke test's vocabulary sized to the corpus's characters: Korean needs about
        # 3,000 pieces at SentencePiece's default coverage, far more than --quick's 500
        config = config.replace(vocab_size=vocab_for_corpus(corpus, config.vocab_size))
    return config, corpus


def run_dir_of(spec: AblationSpec, config: RunConfig) -> Path:
    return Path(config.out) if config.out else default_run_dir(spec.name)


def make_plan(spec: AblationSpec, asked: RunConfig) -> Plan:
    """The one plan of a run: the config settled against the spec, the corpus, every (arm,
    seed) resolved. With --lr-search, the rates its stage chose are read from the run
    directory (`ablations.rundir.RATES`, written by `ablations.run.lr_search`)."""
    config, corpus = settled(spec, asked)
    plan = Plan(spec, config, corpus, selected=select_arms(spec, config))
    if spec.kind == "bench":
        return plan
    searched = read_json(plan.run_dir / RATES) if config.lr_search else {}
    rates = {arm: (r["lr"], r["why"]) for arm, r in searched.items()}
    plan.units = _resolve_units(spec, config, plan.corpus.fingerprint, rates)
    for u in plan.units:
        if u.arm.name in searched:
            u.resolved.lr_search = searched[u.arm.name]["search"]
    pair_eval_sets([u.resolved for u in plan.units],
                   {u.seed: u.resolved for u in plan.units if u.arm is spec.base_arm})
    return plan


def _resolve_units(spec: AblationSpec, config: RunConfig, corpus_fp: str,
                   rates: dict[str, tuple[float, str]]) -> list[Unit]:
    """Every (seed, arm); a time budget is split equally among the distinct configurations."""
    def resolve(n_trained: int) -> list[Unit]:
        units, errors = [], []
        for seed in config.seed_list:
            for i, arm in enumerate(spec.arms, 1):
                head = f"[{i}/{len(spec.arms)}] {arm.name}" + (f" seed {seed}" if config.seeds > 1 else "")
                if problem := arm_path_problem(arm.name):
                    errors.append(f"{arm.name[:40]}{'…' if len(arm.name) > 40 else ''}: {problem}")
                    continue
                try:
                    res = resolve_arm(spec, arm, config, corpus_fp, n_trained, seed, rates.get(arm.name))
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
    if config.budget.max_seconds:
        units = resolve(max(1, len({u.resolved.key for u in units})))
    return units
