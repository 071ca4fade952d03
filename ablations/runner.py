"""The ablation runner: every arm on the same data, seeds and budget; one row per (arm, seed).

- Seed k (`--seeds N`) is the same for every arm: initialisation where shapes agree,
  data order and masks. Units of work are (arm, seed) pairs.
- Finished units (status ok, oom or nan) whose configuration is unchanged are skipped on
  a re-run; an arm that errored is retried; a changed configuration trains afresh. Each
  unit checkpoints, so an interrupted one resumes where it stopped. Units whose resolved
  configuration equals another's are trained once and recorded under both names.
- Several processes (or machines on one shared file system) may run the same command on
  one run directory: a unit is trained by whoever holds its lease (`core.lease`), the
  others skip it and wait for it before writing the report. No row is lost or doubled.
  `--workers N` starts N - 1 such processes itself, each (this one too) with 1/N of the
  torch threads: a small model on a CPU uses two threads poorly, so two arms side by side
  finish sooner than one after the other. Only this process times and reports, alone.
- Failures are results (`ablations.arm`); the summary lists the errors so that the CLI's
  exit code can tell a script that something failed.
- `--ladder K`: a unit yields K rows (rungs, smallest budget first), each appended as soon
  as it is finished; a re-run skips finished rungs and the unit is finished with its
  largest rung, the row every report reads (`results.is_headline`).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablations.arm import ArmTrainer
from ablations.bench import run_bench
from ablations.ladder import rung_budgets
from ablations.options import RunOptions, budget_kind, effective_options
from ablations.report import render_report
from ablations.resolve import ResolvedArm, resolve_arm
from ablations.results import (
    RESULTS,
    SPEC,
    SPEED,
    append_row,
    arm_dir,
    ensure_run_dir,
    is_headline,
    read_rows,
    write_text,
)
from ablations.selection import is_partial, select_arms
from ablations.specs import AblationSpec, Arm
from core.data import corpus_source, vocab_for_corpus
from core.device import device_name, pick_device
from core.lease import Lease
from core.measure import interleaved_speed

FINISHED = ("ok", "oom", "nan")  # results; "error" is retried on a re-run


@dataclass
class RunSummary:
    out: Path
    rows: list[dict] = field(default_factory=list)     # the rows this process appended
    errors: list[str] = field(default_factory=list)    # "arm (seed k): message", one per failed unit

def default_out(spec: AblationSpec) -> Path:
    return Path("runs") / spec.name


class Runner:
    def __init__(self, spec: AblationSpec, opts: RunOptions, console=None, worker: int = 0):
        from rich.console import Console

        self.spec, self.opts = spec, opts
        self.worker = worker  # > 0: a --workers helper (trains free units, then exits)
        self.console = console or Console()
        self.out = Path(opts.out) if opts.out else default_out(spec)
        self.device = pick_device(opts.device)
        if opts.workers > 1 and self.device.type != "cpu":
            raise ValueError(f"--workers {opts.workers} splits CPU cores between arms; on {self.device.type} one arm "
                             "at a time uses the device fully: drop --workers (--nproc-per-node spreads an arm "
                             "over several GPUs)")
        self._eff = effective_options(spec, opts)  # size, lengths, budget: resolved once
        self.selected = select_arms(spec, opts)  # --arms / --shard: the arms this process trains
        self.arms = ArmTrainer(self.out, opts, self._eff, self.device, self.log)
        self.summary = RunSummary(self.out)
        self.rounds = 5  # interleaved timing rounds: enough for a min-max range of the ratios

    def log(self, msg: str) -> None:
        self.console.print(f"[dim]worker {self.worker}[/dim] {msg}" if self.worker else msg)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        ensure_run_dir(self.out)
        if self.spec.kind == "bench":
            return self._run_bench()
        src = corpus_source(self.opts.corpus)
        if self.opts.quick and self.opts.vocab_size is None:
            self._eff["vocab_size"] = self._quick_vocab(src)
        units = self._resolve_units(src.fingerprint)
        valid = [r for _, _, r in units if isinstance(r, ResolvedArm)]
        if valid:  # a corpus or tokenizer problem stops the run here, once, not once per arm
            self.arms.data_for(valid[0].data)
        base = [r for _, arm, r in units if arm is self.spec.base_arm and isinstance(r, ResolvedArm)]
        self.arms.base_data = {r.seed: r.data for r in base}  # each seed's arms are scored on its base's sets
        self._write_spec(valid[0] if valid else None, src.name, len({r.key for r in valid}))
        self._done_keys: dict[str, dict] = {}
        self._finished: set[tuple[str, str]] = set()
        self._rungs: dict[tuple[str, str], dict[int, dict]] = {}  # (key, arm) -> a ladder's finished lower rungs
        self._refresh()
        units = [u for u in units if u[1] in self.selected]  # resolved all, trains its selection
        self._keys: dict[tuple[str, int], list[str]] = {}  # (configuration, seed) -> its arms
        for _, arm, r in units:
            if isinstance(r, ResolvedArm):
                self._keys.setdefault((r.key, r.seed), []).append(arm.name)
        if is_partial(self.opts):
            self.log(f"this process trains {len(self.selected)} of {len(self.spec.arms)} arms: "
                     + (", ".join(a.name for a in self.selected) or "none (an empty shard)"))
        workers = self._start_workers(units)
        waiting = [u for u in units if self._run_one(*u, src.name) == "held"]
        if self.worker:
            return self.summary  # the starting process waits, times and reports
        self._wait_for(waiting, src.name)
        self._join_workers(workers)
        if is_partial(self.opts):
            self.log("side-by-side timing skipped (--arms/--shard): it needs every arm in one process; "
                     "run once more without them after all parts finish (it trains nothing, only times)")
        else:
            self._time_side_by_side([r for _, _, r in units if isinstance(r, ResolvedArm)])
        if (self.out / RESULTS).is_file():
            render_report(self.out, self.console)
        return self.summary

    def _time_side_by_side(self, resolved: list[ResolvedArm]) -> None:
        """Every distinct trained configuration of the first seed, timed in interleaved
        rounds (speed does not depend on the seed); skipped when nothing new was trained
        and an earlier timing covers every arm."""
        seed = self.opts.seed_list[0]
        arms = {r.arm.name: r for r in resolved if r.seed == seed and (r.key, r.arm.name) in self._finished
                and self._done_keys.get(r.key, {}).get("status") == "ok"}
        path = self.out / SPEED
        old = json.loads(path.read_text()) if path.is_file() else {}
        if not arms or (not any(r["status"] == "ok" for r in self.summary.rows) and set(arms) <= set(old)):
            return
        groups: dict[tuple[int, int], dict[str, ResolvedArm]] = {}
        for name, r in arms.items():
            groups.setdefault((r.train.batch_size, r.data.max_length), {})[name] = r
        self.log(f"timing {len(arms)} arms side by side ({self.rounds} interleaved rounds)")
        timed: dict[str, dict] = {}
        for (batch, length), group in groups.items():
            got = interleaved_speed({n: r.model for n, r in group.items()}, batch, length, self.device,
                                    rounds=self.rounds)
            timed.update({n: {**v, "group": f"{batch}x{length}"} for n, v in got.items()})
        write_text(path, json.dumps(timed, indent=1))

    def _quick_vocab(self, src) -> int:
        """Quick mode sizes the vocabulary to the corpus's characters: Korean needs about
        3,000 at SentencePiece's default coverage, far more than a smoke test's 500."""
        return vocab_for_corpus(src, self._eff["vocab_size"])

    def _refresh(self) -> None:
        """What the results file says is finished (by this or any other process)."""
        for r in read_rows(self.out / RESULTS):
            if r.get("status") in FINISHED and r.get("key"):
                self._remember(r["key"], r["arm"], r)

    def _remember(self, key: str, arm: str, row: dict) -> None:
        """A finished row: a ladder's lower rung, or the (arm, seed)'s result."""
        if not is_headline(row):
            self._rungs.setdefault((key, arm), {})[row["rung"]] = row
        else:
            self._done_keys.setdefault(key, row)
            self._finished.add((key, arm))

    def _resolve_units(self, corpus_fp: str) -> list[tuple[str, Arm, ResolvedArm | Exception]]:
        """(head, arm, resolved or its error) for every (seed, arm); a time budget is split
        equally among the distinct configurations that will train."""
        def resolve(n_trained: int) -> list[tuple[str, Arm, ResolvedArm | Exception]]:
            out = []
            for seed in self.opts.seed_list:
                for i, arm in enumerate(self.spec.arms, 1):
                    head = f"[{i}/{len(self.spec.arms)}] {arm.name}" + (f" seed {seed}" if self.opts.seeds > 1 else "")
                    try:
                        out.append((head, arm, resolve_arm(self.spec, arm, self._eff, self.opts, corpus_fp,
                                                           n_trained, seed)))
                    except (ValueError, TypeError) as err:
                        out.append((head, arm, err))
            return out

        units = resolve(1)
        if "max_seconds" in self._eff["budget"]:
            units = resolve(max(1, len({r.key for _, _, r in units if isinstance(r, ResolvedArm)})))
        return units

    def _write_spec(self, first: ResolvedArm | None, corpus: str, distinct: int) -> None:
        eff = self._eff
        budget = {k: getattr(first.train, k) for k in ("max_steps", "max_tokens", "max_seconds", "max_flops")
                  if first is not None and getattr(first.train, k)}
        ladder = {"rungs": self.opts.ladder, "ratio": self.opts.ladder_ratio,
                  "budgets": rung_budgets(budget, self.opts.ladder, self.opts.ladder_ratio)} if self.opts.ladder else None
        write_text(self.out / SPEC, json.dumps({"ablation": self.spec.name, "options": eff,
                                                "budget_per_arm": budget, "budget_kind": budget_kind(budget or eff["budget"]),
                                                "corpus": corpus,
                                                "arms": [a.name for a in self.spec.arms],
                                                "seeds": self.opts.seed_list, "ladder": ladder}, indent=1, default=str))
        self.log(f"[bold]{self.spec.name}[/bold]: {len(self.spec.arms)} arms × {self.opts.seeds} seed(s) "
                 f"({distinct} distinct runs), size {eff['size']}, seq {eff['seq_len']}, batch {eff['batch_size']}, "
                 f"budget {budget} per arm, corpus: {corpus}, device: {device_name(self.device)}; results in {self.out}")
        if ladder:
            self.log(f"ladder: every arm at {ladder['rungs']} budgets {ladder['budgets']}, cooled down (wsd) from one "
                     "constant-rate run per arm and seed")

    # -- one (arm, seed) --------------------------------------------------------------------------
    def _run_one(self, head: str, arm: Arm, res: ResolvedArm | Exception, corpus: str) -> str:
        """Train one unit or record why not; returns what happened ("held": another process
        is training it right now)."""
        if isinstance(res, Exception):
            row = self._row_base(arm, None, corpus)
            row.update(status="error", error=f"invalid configuration: {res}")
            return self._record(head, row, log_prefix="[red]error[/red] ")
        done = self._done_keys.get(res.key)
        if (res.key, arm.name) in self._finished:
            self.log(f"{head}: finished earlier ({done['status']}), skipped" + _NAN_HINT.get(done["status"], ""))
            return "finished"
        if done is not None:
            return self._record_twin(head, arm, res, done)
        twin = self._twin_in_flight(arm, res)
        if twin is not None:
            self.log(f"{head}: same configuration as {twin}, which another process is training; waiting for it")
            return "held"
        lease = Lease(arm_dir(self.out, arm.name, res.seed))
        if not lease.acquire():
            self.log(f"{head}: being trained by {lease.holder_info().get('holder', 'another process')}; "
                     "its row will be waited for")
            return "held"
        try:
            return self._train_leased(head, arm, res, corpus)
        finally:
            lease.release()

    def _train_leased(self, head: str, arm: Arm, res: ResolvedArm, corpus: str) -> str:
        # another process may have finished it between our first look and the lease
        self._refresh()
        if res.key in self._done_keys:
            return self._run_one(head, arm, res, corpus)
        self.log(f"{head}: {arm.description or ''}")
        if self.opts.ladder:
            return self._train_ladder(head, arm, res, corpus)
        return self._finished_row(head, arm, res, self.arms.train(res, self._row_base(arm, res, corpus)))

    def _train_ladder(self, head: str, arm: Arm, res: ResolvedArm, corpus: str) -> str:
        done = self._rungs.get((res.key, arm.name), {})
        if done:
            self.log(f"  rungs {', '.join(str(k + 1) for k in sorted(done))} finished earlier, kept")
        status = "ok"
        for row in self.arms.train_ladder(res, self._row_base(arm, res, corpus), done):
            status = self._finished_row(head, arm, res, row)
        return status

    def _finished_row(self, head: str, arm: Arm, res: ResolvedArm, row: dict) -> str:
        if row["status"] in FINISHED:
            self._remember(res.key, arm.name, row)
        colour = {"ok": "green", "oom": "yellow"}.get(row["status"], "red")
        rung = f"rung {row['rung'] + 1}/{row['ladder']}: " if row.get("ladder") else ""
        summary = f"eval MLM loss {row['eval_mlm_loss']:.3f}, " if row.get("eval_mlm_loss") is not None else ""
        self.log(f"  [{colour}]{row['status']}[/{colour}] {rung}{summary}{row.get('wall_s', 0):.0f}s"
                 + (f" — {row['error']}" if row.get("error") else ""))
        return self._record(head, row)

    def _record_twin(self, head: str, arm: Arm, res: ResolvedArm, twin: dict) -> str:
        """The twin's row (a ladder: its rungs too, smallest first) recorded under this arm."""
        self.log(f"{head}: same configuration as {twin['arm']}; its result is recorded for this arm too")
        mine = self._rungs.setdefault((res.key, arm.name), {})
        for k, rung in sorted(self._rungs.get((res.key, twin["arm"]), {}).items()):
            if k not in mine:
                mine[k] = self._as_arm(rung, arm)
                self._record(head, mine[k], quiet=True)
        self._finished.add((res.key, arm.name))
        return self._record(head, self._as_arm(twin, arm), quiet=True)

    def _as_arm(self, twin: dict, arm: Arm) -> dict:
        return {**twin, "arm": arm.name, "description": arm.description, "component": arm.component,
                "compare_to": self._ref(arm), "overrides": dict(arm.overrides), "same_as": twin["arm"]}

    def _record(self, head: str, row: dict, log_prefix: str = "", quiet: bool = False) -> str:
        append_row(self.out / RESULTS, row)
        self.summary.rows.append(row)
        if row["status"] == "error":
            self.summary.errors.append(f"{row['arm']} (seed {row['seed']}): {row['error']}")
            if log_prefix:
                self.log(f"{head}: {log_prefix}{row['error']}")
        return row["status"]

    def _start_workers(self, units: list) -> list:
        """--workers N: N - 1 helper processes take free units through the leases; every
        trainer, this one included, gets 1/N of the torch threads until training is done."""
        n = min(self.opts.workers, len(units))
        if n <= 1 or self.worker:
            return []
        self._threads = torch.get_num_threads()
        share = max(1, self._threads // n)
        self.log(f"training with {n} workers side by side, {share} torch thread(s) each")
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        opts = dataclasses.replace(self.opts, progress=False)  # one live display per terminal
        procs = [ctx.Process(target=_worker_main, args=(self.spec, opts, share, k), name=f"worker {k}")
                 for k in range(2, n + 1)]
        for p in procs:
            p.start()
        torch.set_num_threads(share)
        return procs

    def _join_workers(self, procs: list) -> None:
        for p in procs:
            p.join()
            if p.exitcode:
                self.log(f"[yellow]{p.name} exited with code {p.exitcode}[/yellow]; its units were taken over "
                         "or are listed as errors")
        if procs:
            torch.set_num_threads(self._threads)  # timing and the report use the whole machine

    def _twin_in_flight(self, arm: Arm, res: ResolvedArm) -> str | None:
        """An arm of the same configuration that another process is training right now: its
        row will be this arm's too, so training it again would only double the work."""
        for other in self._keys.get((res.key, res.seed), []):
            if other != arm.name and Lease(arm_dir(self.out, other, res.seed)).holder_info() is not None:
                return other
        return None

    def _wait_for(self, waiting: list, corpus: str, poll_s: float = 2.0) -> None:
        """Units another process holds: wait for their rows; take over any whose holder died."""
        if waiting:
            self.log(f"waiting for {len(waiting)} unit(s) trained by other processes")
        while waiting:
            time.sleep(poll_s)
            self._refresh()
            waiting = [u for u in waiting if self._run_one(*u, corpus) == "held"]

    # -- bench ------------------------------------------------------------------------------------
    def _run_bench(self) -> RunSummary:
        eff = self._eff
        seq_lens = self.spec.bench_seq_lens[:2] if self.opts.quick else self.spec.bench_seq_lens
        self.summary.errors += run_bench(self.spec.bench_variants, seq_lens, "both", eff["size"],
                  512 if self.opts.quick else self.spec.defaults.get("tokens_per_batch", 8192),
                  self.opts, self.out, self.console, ablation=self.spec.name)
        render_report(self.out, self.console)
        return self.summary

    def _ref(self, arm: Arm) -> str | None:
        ref = self.spec.reference_of(arm)
        return ref.name if ref else None

    def _row_base(self, arm: Arm, res: ResolvedArm | None, corpus: str) -> dict[str, Any]:
        return {
            "ablation": self.spec.name, "arm": arm.name, "description": arm.description,
            "component": arm.component, "compare_to": self._ref(arm), "variant": self.spec.base,
            "overrides": dict(arm.overrides), "config": res.flat if res else {}, "key": res.key if res else None,
            "status": "ok", "error": None, "corpus": corpus, "device": device_name(self.device),
            "workers": self.opts.workers,
            "seed": res.seed if res else self.opts.seed, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "params_unique": None, "params_total": None, "tokens_seen": 0, "wall_s": 0.0,
            "train_loss": [], "train_loss_time": [], "evals": [],
            "eval_mlm_loss": None, "eval_mlm_acc": None, "eval_sentence_acc": None,
            "eval_nsp_acc": None, "eval_sop_acc": None,
            "tokens_per_s": None, "infer_tokens_per_s": None, "train_tokens_per_s": None,
            "peak_mem_bytes": None, "saved_bytes": None, "saved_bytes_long": None, "long_seq_len": None,
            "flops_per_token": None, "utilisation": None, "flops_label": None,
            "flops_per_step": None, "flops_per_token_measured": None, "flops_per_token_analytic": None,
            "train_flops": None, "budget_kind": budget_kind(res.train.to_dict() if res else self._eff["budget"]),
        }

def run_ablation(spec: AblationSpec, opts: RunOptions, console=None) -> RunSummary:
    return Runner(spec, opts, console).run()


def _worker_main(spec: AblationSpec, opts: RunOptions, threads: int, index: int) -> None:
    """A --workers helper process: the same run, training whatever unit is free."""
    torch.set_num_threads(threads)
    Runner(spec, opts, worker=index).run()


_NAN_HINT = {"nan": "; it stopped on a non-finite loss: change its configuration (e.g. --lr) to train it again"}

