"""`--workers N`: N - 1 helper processes on the same run directory, each training whatever
unit is free (the leases decide), every trainer with 1/N of the torch threads.

A small model on a CPU uses two threads poorly, so two arms side by side finish sooner
than one after the other. Only the starting process times arms side by side (alone, with
every thread) and the CLI then reports.
"""
from __future__ import annotations

import dataclasses
import multiprocessing

import torch


class Workers:
    def __init__(self, procs: list, threads: int):
        self.procs, self.threads = procs, threads

    @classmethod
    def start(cls, runner, units: int, target) -> Workers:
        """target(plan, threads, index): a helper process's entry, module-level so that spawn can pickle it."""
        n = min(runner.opts.workers, units)
        threads = torch.get_num_threads()
        if n <= 1 or runner.worker:
            return cls([], threads)
        share = max(1, threads // n)
        runner.log(f"training with {n} workers side by side, {share} torch thread(s) each")
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        plan = dataclasses.replace(runner.plan, opts=dataclasses.replace(runner.opts, progress=False))  # one live display
        procs = [ctx.Process(target=target, args=(plan, share, k), name=f"worker {k}") for k in range(2, n + 1)]
        for p in procs:
            p.start()
        torch.set_num_threads(share)
        return cls(procs, threads)

    def join(self, log) -> None:
        for p in self.procs:
            p.join()
            if p.exitcode:
                log(f"[yellow]{p.name} exited with code {p.exitcode}[/yellow]; its units were taken over "
                    "or are listed as errors")
        if self.procs:
            torch.set_num_threads(self.threads)  # timing and the report use the whole machine

