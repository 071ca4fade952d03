"""`--workers N`: N - 1 helper processes on the same run directory, each training whatever
unit is free (the leases decide), every trainer with 1/N of the torch threads.

A small model on a CPU uses two threads poorly, so two arms side by side finish sooner
than one after the other. Only the starting process times arms side by side (alone, with
every thread) and the CLI then reports.
"""
from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys

import torch

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """A helper outlives a starting process killed with SIGKILL (no cleanup runs there), and
    would go on training on cores the user believes free. On Linux the kernel sends the
    helper SIGKILL when its parent dies; its unit resumes from the checkpoint like any
    killed run's. Elsewhere helpers still finish their current unit, then find none free."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


class Workers:
    def __init__(self, procs: list, threads: int):
        self.procs, self.threads = procs, threads

    @classmethod
    def start(cls, plan, units: int, target, log) -> Workers:
        """target(plan, threads, index, parent pid): a helper process's entry, module-level so
        that spawn can pickle it."""
        n = min(plan.config.workers, units)
        threads = torch.get_num_threads()
        if n <= 1:
            return cls([], threads)
        share = max(1, threads // n)
        log(f"training with {n} workers side by side, {share} torch thread(s) each")
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        plan = dataclasses.replace(plan, config=plan.config.replace(progress=False))  # one live display
        procs = [ctx.Process(target=target, args=(plan, share, k, os.getpid()), name=f"worker {k}")
                 for k in range(2, n + 1)]
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

