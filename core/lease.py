"""Leases: "this process is working on that directory", safe across processes and machines
that share a file system, and self-expiring when the holder dies.

A lease is a small JSON file (holder id, host, pid, pid namespace) whose modification
time is its heartbeat: a background thread touches it every `heartbeat_s`. A lease whose
heartbeat is older than `ttl_s` belongs to a crashed holder and may be taken over. A
holder on this host (and pid namespace) whose process no longer exists is known dead at
once, without waiting out the ttl (a killed run restarted at once would otherwise wait a
minute for its own old lease); a holder elsewhere is judged by its heartbeat alone, since
its pid means nothing here. Acquisition and takeover happen under an flock on a sibling
file, so two contenders never both win.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from core.files import atomic_write_text, file_lock

LEASE = "lease.json"


def _pid_namespace() -> str:
    """Which pid numbering this process sees ('' where unknown): containers that share a
    host name (docker --network host) do not share pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _dead_here(info: dict) -> bool:
    """The holder ran on this host, in this pid namespace, and its process is gone. A live
    pid (even one reused by another process, or another user's) is no proof of death: there
    the ttl decides."""
    if (info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int)
            or info.get("pidns", "") != _pid_namespace()):
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, someone else's
        return False
    return False


class Lease:
    def __init__(self, directory: str | Path, ttl_s: float = 60.0, heartbeat_s: float = 10.0):
        self.dir = Path(directory)
        self.path = self.dir / LEASE
        self.ttl_s, self.heartbeat_s = ttl_s, heartbeat_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- who holds it ------------------------------------------------------------------------
    def holder_info(self) -> dict | None:
        """The live holder's record, or None when the lease is free or expired."""
        try:
            age = time.time() - self.path.stat().st_mtime
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return info if age <= self.ttl_s and not _dead_here(info) else None

    def held_elsewhere(self) -> bool:
        info = self.holder_info()
        return info is not None and info.get("holder") != self.holder

    # -- acquire and release -----------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the lease if it is free or expired; False if another live process holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / f".{LEASE}.lock"):
            if self.held_elsewhere():
                return False
            atomic_write_text(self.path, json.dumps({"holder": self.holder, "host": socket.gethostname(),
                                                     "pid": os.getpid(), "pidns": _pid_namespace(),
                                                     "since": time.time()}))
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.dir.name}", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with file_lock(self.dir / f".{LEASE}.lock"):
            info = self.holder_info()
            if info is not None and info.get("holder") == self.holder:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        if not self.acquire():
            raise RuntimeError(f"{self.dir} is leased by {self.holder_info()}")
        return self

    def __exit__(self, *exc) -> None:
        self.release()
