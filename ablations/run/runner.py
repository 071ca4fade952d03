"""The runner: every unit of a plan trained (or recorded) once; one row per (arm, seed).

- Seed k (`--seeds N`) is the same for every arm: initialisation where shapes agree,
  data order and masks. A unit is an (arm, seed) pair.
- Finished units (status ok, oom or nan) whose configuration is unchanged are skipped on
  a re-run; a unit that errored is retried; a changed configuration trains afresh. Each
  unit checkpoints, so an interrupted one resumes where it stopped. Units whose resolved
  configuration equals another's are trained once and recorded under both names.
- Several processes (or machines on one shared file system) may run the same command on
  one run directory: a unit is trained by whoever holds its lease (`core.lease`), the
  others skip it and wait for its row. No row is lost or doubled. `--workers N` starts
  N - 1 such processes itself (`ablations.run.workers`).
- Failures are results (`ablations.run.arm`); the summary lists the errors so that the
  CLI's exit code can tell a script that something failed.
- `--ladder K`: a unit yields K rows (rungs, smallest budget first), each appended as soon
  as it is finished; a re-run skips finished rungs, and the unit's result is its largest
  rung (`ablations.rundir.results`).

The runner does not render the report: the CLI does, from the run directory, after it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ablations.plan import Plan, ResolvedArm, Unit
from ablations.rows import Row
from ablations.run.arm import ArmTrainer
from ablations.run.bench import run_bench
from ablations.run.downstream import missing_tasks, rescored
from ablations.run.ladder import train_ladder
from ablations.run.rows import row_base, twin_row
from ablations.run.timing import time_side_by_side
from ablations.run.workers import Workers, die_with_parent
from ablations.rundir import (
    ERROR_LOG,
    FINISHED,
    RESULTS,
    SPEC,
    append_row,
    arm_dir,
    claim_run_dir,
    read_rows,
    results,
    rung_dir,
    write_text,
)
from ablations.specs import start_arm
from core.device import device_name, pick_device
from core.lease import Lease

_NAN_HINT = {"nan": "; it stopped on a non-finite loss: change its configuration (e.g. --lr) to train it again"}


@dataclass
class RunSummary:
    out: Path
    rows: list[Row] = field(default_factory=list)      # the rows this process appended
    errors: list[str] = field(default_factory=list)    # "arm (seed k) ...: message", one line per failed unit
    error_logs: list[Path] = field(default_factory=list)  # their tracebacks (`--debug` prints them)


class Runner:
    def __init__(self, plan: Plan, console=None, worker: int = 0, timing: bool = True):
        from rich.console import Console

        self.plan, self.spec, self.config = plan, plan.spec, plan.config
        self.worker = worker  # > 0: a --workers helper (trains free units, then exits)
        self.timing = timing  # time the arms side by side after training (not for search points)
        self.console = console or Console()
        self.out = plan.run_dir
        self.device = pick_device(self.config.device)
        if self.config.workers > 1 and self.device.type != "cpu":
            raise ValueError(f"--workers {self.config.workers} splits CPU cores between arms; on {self.device.type} "
                             "one arm at a time uses the device fully: drop --workers (--nproc-per-node spreads "
                             "an arm over several GPUs)")
        self.trainer = ArmTrainer(self.out, plan.config, self.device, self.log)
        self.summary = RunSummary(self.out)
        self._said_held: set[str] = set()  # units whose "held by another process" line was printed
        self.done_keys: dict[str, Row] = {}                           # configuration key -> its finished row
        self.finished: set[tuple[str, str]] = set()                   # (key, arm) with a result
        self.rungs: dict[tuple[str, str], dict[int, Row]] = {}        # (key, arm) -> a ladder's finished lower rungs
        self.twins: dict[tuple[str, int], list[str]] = {}             # (key, seed) -> the arms that share it

    def log(self, msg: str) -> None:
        self.console.print(f"[dim]worker {self.worker}[/dim] {msg}" if self.worker else msg)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        claim_run_dir(self.out, self.spec.name)
        if self.spec.kind == "bench":
            return self._run_bench()
        plan = self.plan
        self.trainer.data_for(plan.units[0].resolved.data)  # a corpus or tokenizer problem stops the run here, once
        if not self.worker:
            self._write_spec()
        self._refresh()
        for u in plan.trained:
            self.twins.setdefault((u.resolved.key, u.seed), []).append(u.arm.name)
        if plan.partial:
            self.log(f"this process trains {len(plan.selected)} of {len(self.spec.arms)} arms: "
                     + (", ".join(a.name for a in plan.selected) or "none (an empty shard)"))
        workers = Workers.start(plan, 0 if self.worker else len(plan.trained), _worker_main, self.log)
        waiting = [u for u in plan.trained if self._run_one(u) == "held"]
        if self.worker:
            return self.summary  # the starting process waits, times and reports
        self._wait_for(waiting)
        workers.join(self.log)
        if self.timing and plan.partial:
            self.log("side-by-side timing skipped (--arms/--shard): it needs every arm in one process; "
                     "run once more without them after all parts finish (it trains nothing, only times)")
        elif self.timing:
            time_side_by_side(self._timed_arms(), self.out, self.device, self.log,
                              trained_now=any(r.ok for r in self.summary.rows))
        return self.summary

    def _timed_arms(self) -> dict[str, ResolvedArm]:
        """The first seed's arms that finished ok: what the side-by-side timing covers."""
        seed = self.config.seed_list[0]
        return {u.arm.name: u.resolved for u in self.plan.units if u.seed == seed
                and (u.resolved.key, u.arm.name) in self.finished
                and (done := self.done_keys.get(u.resolved.key)) is not None and done.ok}

    def _write_spec(self) -> None:
        info = self.plan.spec_json()
        write_text(self.out / SPEC, json.dumps(info, indent=1, default=str))
        s = self.plan.config
        distinct = len({u.resolved.key for u in self.plan.units})
        self.log(f"[bold]{self.spec.name}[/bold]: {len(self.spec.arms)} arms × {self.config.seeds} seed(s) "
                 f"({distinct} distinct runs), size {s.size}, seq {s.seq_len}, batch {s.batch_size}, "
                 f"budget {info['budget_per_arm']} per arm, corpus: {info['corpus']}, device: "
                 f"{device_name(self.device)}; results in {self.out}")
        if info["ladder"]:
            self.log(f"ladder: every arm at {info['ladder']['rungs']} budgets {info['ladder']['budgets']}, cooled "
                     "down (wsd) from one constant-rate run per arm and seed")

    def _refresh(self) -> None:
        """What the results file says is finished (by this or any other process)."""
        for r in read_rows(self.out / RESULTS, self.spec.name):
            if r.status in FINISHED and r.key:
                self._remember(r.key, r.arm, r)

    def _remember(self, key: str, arm: str, row: Row) -> None:
        """A finished row: a ladder's lower rung, or the (arm, seed)'s result."""
        if row.is_lower_rung:
            self.rungs.setdefault((key, arm), {})[row.rung] = row
        else:
            self.done_keys.setdefault(key, row)
            self.finished.add((key, arm))

    # -- one (arm, seed) --------------------------------------------------------------------------
    def _run_one(self, unit: Unit) -> str:
        """Train one unit or record why not; returns what happened ("held": another process
        is training it right now)."""
        res, arm = unit.resolved, unit.arm
        done = self.done_keys.get(res.key)
        if (res.key, arm.name) in self.finished:
            self.log(f"{unit.head}: finished earlier ({done.status}), skipped" + _NAN_HINT.get(done.status, ""))
            self._reinstate(unit)
            self._rescore(unit)
            return "finished"
        if done is not None:
            return self._record_twin(unit, done)
        start = start_arm(arm)
        if start is not None and Lease(arm_dir(self.out, start, res.seed)).holder_info() is not None:
            self._say_held(unit, f"warm-starts from {start}, which another process is training; waiting for it")
            return "held"
        twin = self._twin_in_flight(unit)
        if twin is not None:
            self._say_held(unit, f"same configuration as {twin}, which another process is training; waiting for it")
            return "held"
        lease = Lease(arm_dir(self.out, arm.name, res.seed))
        if not lease.acquire():
            self._say_held(unit, f"being trained by {lease.holder_info().get('holder', 'another process')}; "
                                 "its row will be waited for")
            return "held"
        try:
            return self._train_leased(unit)
        finally:
            lease.release()

    def _say_held(self, unit: Unit, why: str) -> None:
        """Once per unit: the wait polls every few seconds, and a line per poll buried the log."""
        if unit.head not in self._said_held:
            self._said_held.add(unit.head)
            self.log(f"{unit.head}: {why}")

    def _train_leased(self, unit: Unit) -> str:
        self._refresh()  # another process may have finished it between our first look and the lease
        if unit.resolved.key in self.done_keys:
            return self._run_one(unit)
        self.log(unit.banner)
        base = row_base(self.plan, unit.arm, unit.resolved, self.device)
        if not self.config.ladder:
            return self._file_row(unit, self.trainer.train(unit.resolved, base))
        done = self.rungs.get((unit.resolved.key, unit.arm.name), {})
        if done:
            self.log(f"  rungs {', '.join(str(k + 1) for k in sorted(done))} finished earlier, kept")
        status = "ok"
        for row in train_ladder(self.trainer, unit.resolved, base, done):
            status = self._file_row(unit, row)
        return status

    def _file_row(self, unit: Unit, row: Row) -> str:
        """A freshly trained row: remembered, logged and appended."""
        if row.status in FINISHED:
            self._remember(unit.resolved.key, unit.arm.name, row)
        colour = {"ok": "green", "oom": "yellow"}.get(row.status, "red")
        rung = f"rung {row.rung + 1}/{row.ladder}: " if row.ladder else ""
        summary = f"eval MLM loss {row.eval_mlm_loss:.3f}, " if row.eval_mlm_loss is not None else ""
        self.log(f"  [{colour}]{row.status}[/{colour}] {rung}{summary}{row.wall_s or 0:.0f}s"
                 + (f" — {row.error}" if row.error else ""))
        return self._append(row)

    def _reinstate(self, unit: Unit) -> None:
        """The result of an (arm, seed) is its latest row (`rundir.results`). A unit this plan
        finds finished may since have been replaced there by a row of another configuration
        (a rate an earlier --lr-search chose, an earlier --lr): skipping it would report the
        other one. Its own row is appended again, so the result is what this plan asks for."""
        res = unit.resolved
        if self.config.ladder:
            return
        rows = read_rows(self.out / RESULTS, self.spec.name)
        latest = results(rows).get((unit.arm.name, res.seed))
        if latest is None or latest.key == res.key:
            return
        mine = [r for r in rows if r.key == res.key and r.arm == unit.arm.name and r.seed == res.seed
                and r.status in FINISHED and not r.is_lower_rung]
        if mine:
            self.log(f"  its row is the result again: a later row of another configuration "
                     f"(lr {latest.config.get('train.lr')}) had replaced it")
            self._append(mine[-1].merged({"reinstated": True}))

    def _rescore(self, unit: Unit) -> None:
        """A finished arm whose downstream scores failed, or lack a task this run asks for,
        is fine-tuned again from its kept weights: only that step is redone, never the
        pretraining. The row, with the new scores, is appended as its result."""
        if not self.config.downstream or self.config.ladder:
            return
        res = unit.resolved
        row = results(read_rows(self.out / RESULTS, self.spec.name)).get((unit.arm.name, res.seed))
        if not row or row.key != res.key or not row.ok or not row.weights_dir:
            return
        missing = missing_tasks(row, self.config.downstream)
        if not missing:
            return
        lease = Lease(arm_dir(self.out, unit.arm.name, res.seed))
        if not lease.acquire():
            return  # another process holds it: it rescores, or trains
        try:
            self.log(f"  downstream {'failed' if row.downstream_error else 'not scored'} earlier "
                     f"({', '.join(missing)}): fine-tuning the kept weights again, pretraining kept")
            c = self.config
            self._append(rescored(row, self.out / row.weights_dir, c.downstream, c.downstream_steps,
                                  c.downstream_seeds, c.device, self.log))
        finally:
            lease.release()

    def _record_twin(self, unit: Unit, twin: Row) -> str:
        """The twin's row (a ladder: its rungs too, smallest first) recorded under this arm."""
        res, arm = unit.resolved, unit.arm
        self.log(f"{unit.head}: same configuration as {twin.arm}; its result is recorded for this arm too")
        mine = self.rungs.setdefault((res.key, arm.name), {})
        for k, rung in sorted(self.rungs.get((res.key, twin.arm), {}).items()):
            if k not in mine:
                mine[k] = twin_row(self.spec, rung, arm)
                self._append(mine[k])
        self.finished.add((res.key, arm.name))
        return self._append(twin_row(self.spec, twin, arm))

    def _append(self, row: Row) -> str:
        append_row(self.out / RESULTS, row)
        self.summary.rows.append(row)
        if row.status == "error":
            log = self._error_log(row)
            step = f" failed at {row.failed_step}" if row.failed_step else ""
            self.summary.errors.append(f"{row.arm} (seed {row.seed}){step}: {row.error}"
                                       + (f"; traceback: {log}" if log else ""))
            self.summary.error_logs += [log] if log else []
        return row.status

    def _error_log(self, row: Row) -> Path | None:
        unit = arm_dir(self.out, row.same_as or row.arm, row.seed)
        path = rung_dir(unit, row.rung) / ERROR_LOG if row.ladder else unit / ERROR_LOG
        return path if path.is_file() else None

    def _twin_in_flight(self, unit: Unit) -> str | None:
        """An arm of the same configuration that another process is training right now: its
        row will be this arm's too, so training it again would only double the work."""
        for other in self.twins.get((unit.resolved.key, unit.seed), []):
            if other != unit.arm.name and Lease(arm_dir(self.out, other, unit.seed)).holder_info() is not None:
                return other
        return None

    def _wait_for(self, waiting: list[Unit], poll_s: float = 2.0) -> None:
        """Units another process holds: wait for their rows; take over any whose holder died."""
        if waiting:
            self.log(f"waiting for {len(waiting)} unit(s) trained by other processes")
        while waiting:
            time.sleep(poll_s)
            self._refresh()
            waiting = [u for u in waiting if self._run_one(u) == "held"]

    def _run_bench(self) -> RunSummary:
        s, spec = self.plan.config, self.spec
        seq_lens = spec.bench_seq_lens[:2] if self.config.quick else spec.bench_seq_lens
        self.summary.errors += run_bench(spec.bench_variants, seq_lens, "both", s.size,
                                         512 if self.config.quick else self.config.tokens_per_batch or 8192,
                                         self.config, self.out, self.console, ablation=spec.name)
        return self.summary


def run_plan(plan: Plan, console=None) -> RunSummary:
    """Every unit of the plan (the search of --lr-search has run before the plan:
    `ablations.run.stages.run_ablation`)."""
    return Runner(plan, console).run()


def default_console():
    from rich.console import Console

    return Console()


def _worker_main(plan: Plan, threads: int, index: int, parent_pid: int) -> None:
    """A --workers helper process: the same plan, training whatever unit is free."""
    import torch

    die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    Runner(plan, worker=index).run()
