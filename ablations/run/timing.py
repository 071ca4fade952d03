"""Every trained arm's training step timed side by side, after training: interleaved rounds
in one process, so that the speed ratios the verdicts judge come from the same minutes."""
from __future__ import annotations

import json
from pathlib import Path

from ablations.plan import ResolvedArm
from ablations.rundir import SPEED, read_json, write_text
from core.measure import interleaved_speed

ROUNDS = 5  # interleaved timing rounds: enough for a min-max range of the ratios


def time_side_by_side(arms: dict[str, ResolvedArm], out: Path, device, log, trained_now: bool) -> None:
    """`arms`: every finished ok configuration of the first seed (speed does not depend on
    the seed); skipped when nothing new was trained and an earlier timing covers every arm."""
    path = out / SPEED
    old = read_json(path)
    if not arms or (not trained_now and set(arms) <= set(old)):
        return
    groups: dict[tuple[int, int], dict[str, ResolvedArm]] = {}
    for name, r in arms.items():
        groups.setdefault((r.train.batch_size, r.data.max_length), {})[name] = r
    log(f"timing {len(arms)} arms side by side ({ROUNDS} interleaved rounds)")
    timed: dict[str, dict] = {}
    for (batch, length), group in groups.items():
        got = interleaved_speed({n: r.model for n, r in group.items()}, batch, length, device, rounds=ROUNDS)
        timed.update({n: {**v, "group": f"{batch}x{length}"} for n, v in got.items()})
    write_text(path, json.dumps(timed, indent=1))
