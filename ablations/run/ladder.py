"""`--ladder K`: one (arm, seed) yields K rows. One long wsd run in the unit's directory is
paused at each rung's cooldown start, and each rung cools down in `rung-k/` from a copy of
that checkpoint (`ablations.plan.ladder`); each rung is one step of the unit, failing or
finishing on its own (`ArmTrainer.guarded`)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from ablations.plan.ladder import Ladder, budget_axis
from ablations.plan.resolve import ResolvedArm
from ablations.rows import Row
from ablations.run.arm import ArmTrainer
from ablations.run.rows import Draft
from ablations.run.weights import drop_checkpoint, with_init_from
from ablations.rundir import BRANCH, arm_dir, rung_dir
from core.files import atomic_path, atomic_write_text
from core.train import CHECKPOINT, load_checkpoint


def train_ladder(trainer: ArmTrainer, res: ResolvedArm, base: Row, done: dict[int, Row]) -> Iterator[Row]:
    """Rung rows, smallest budget first, each yielded as soon as it is finished (so an
    interrupted ladder keeps them); rungs in `done` (rung -> its row) are skipped."""
    # every rung counts its FLOPs
    stable, flops = trainer.with_flops(res, with_init_from(res.train, trainer.out, res.seed), base.config)
    ladder = Ladder.of(stable, trainer.config.ladder, trainer.config.ladder_ratio)
    unit = arm_dir(trainer.out, res.arm.name, res.seed)
    measured: dict[str, Any] = {}
    rows = dict(done)
    for k in range(len(ladder)):
        if k in done:
            continue
        kind, amount = budget_axis(ladder.budgets[k])
        draft = Draft(base.merged({**flops, "ladder": len(ladder), "rung": k, "rung_budget": amount,
                                   "rung_budget_unit": kind, "ladder_ratio": ladder.ratio}))
        trainer.guarded(draft, partial(_rung_into, trainer, draft, res, ladder, k, unit, measured), rung_dir(unit, k))
        rows[k] = draft.row
        yield draft.row
    if all(r.ok and r.branch_step is not None for r in rows.values()):
        trainer.log("  " + ladder.cost([(rows[k].branch_step, rows[k].steps) for k in sorted(rows)]))
    if rows[len(ladder) - 1].ok and not trainer.config.keep_checkpoints:
        drop_checkpoint(unit)  # the stable run's; the largest rung's final weights stay


def _rung_into(trainer: ArmTrainer, draft: Draft, res: ResolvedArm, ladder: Ladder, k: int, unit: Path,
               measured: dict) -> None:
    """Rung k: bring the stable run to the rung's cooldown start (once: a copy in the
    rung's directory marks it done), then cool down to the rung's budget there."""
    data = trainer.data_for(res.data)
    eval_data, eval_set = trainer.eval_data_for(res, data)
    draft.update(eval_set=eval_set)
    rdir = rung_dir(unit, k)
    if not (rdir / CHECKPOINT).is_file():
        paused, _ = trainer.fit_unit(res, data, eval_data, ladder.stable, unit, until=ladder.branch_point(k))
        # "ok": the branch point rounded up to the stable run's own budget (tiny budgets)
        if paused.status not in ("paused", "ok"):  # the stable run failed (nan): so does this rung
            draft.update(paused.to_json())
            return
        _branch(unit, rdir)
    branch = json.loads((rdir / BRANCH).read_text())  # the stable run's progress at the branch
    kind, amount = budget_axis(ladder.budgets[k])
    trainer.log(f"  rung {k + 1}/{len(ladder)} ({amount:,} {kind}): cooldown from the stable run's step "
                f"{branch['step']:,}")
    trained, model = trainer.fit_unit(res, data, eval_data, ladder.rung(k), rdir)
    draft.update(trained.to_json(), branch_step=branch["step"], branch_tokens=branch["tokens"])
    if draft.row.ok and k == len(ladder) - 1:  # the arm's usual result: weights kept, downstream
        draft.update(trainer.keep_and_score(model or trainer.from_checkpoint(res, rdir), data, unit, res))
    del model
    if draft.row.ok and not trainer.config.keep_checkpoints:
        (rdir / BRANCH).unlink(missing_ok=True)
        drop_checkpoint(rdir)
    if not measured:
        measured.update(trainer.measurements(res, speed=True))
    draft.update(measured)


def _branch(unit: Path, rdir: Path) -> None:
    """Copy the paused stable checkpoint into the rung's directory (the copy, written
    last and atomically, is what says the branch exists)."""
    rdir.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(unit / CHECKPOINT)
    atomic_write_text(rdir / BRANCH, json.dumps(state["progress"]))
    with atomic_path(rdir / CHECKPOINT) as tmp:
        shutil.copyfile(unit / CHECKPOINT, tmp)
