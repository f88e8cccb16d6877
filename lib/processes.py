"""Which process holds a lease: host, pid and start time, and whether that process still lives.

A lease names its owner so that a new worker can take over the work of a dead one at once, instead
of waiting for the lease to expire. The pid alone is not enough (pids are reused), so the owner
carries the process's start time as the kernel counts it (/proc/<pid>/stat, field 22); a pid whose
start time differs is another process. A lease owned on another host cannot be checked from here:
only its expiry frees it.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class ProcessId:
    host: str
    pid: int
    started: int  # clock ticks after boot (/proc), or epoch milliseconds where /proc is missing

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    @classmethod
    def parse(cls, text: str | None) -> ProcessId | None:
        """The owner a lease names, or None for a name in another format (then only expiry frees it)."""
        parts = (text or "").rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]))


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[19])  # field 22 overall: starttime


@lru_cache(maxsize=1)
def this_process() -> ProcessId:
    """This process, as leases name it (cached: a process's identity does not change)."""
    pid = os.getpid()
    started = _start_ticks(pid)
    return ProcessId(socket.gethostname(), pid, started if started is not None else int(time.time() * 1000))


def is_alive(owner: ProcessId) -> bool | None:
    """True or False for a process of this host; None when it cannot be told (another host)."""
    if owner.host != socket.gethostname():
        return None
    if owner == this_process():
        return True
    started = _start_ticks(owner.pid)
    if started is not None:
        return started == owner.started
    if os.path.isdir("/proc"):
        return False  # /proc exists and has no such pid
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease_is_free(owner: str | None, lease_until: float | None, me: str, now: float | None = None) -> bool:
    """May `me` take a lease held by `owner` until `lease_until` (epoch seconds)?

    Yes when nobody holds it, `me` does, it has expired, or its owner is a dead process of this host.
    """
    if owner is None or owner == me:
        return True
    if (lease_until or 0.0) < (time.time() if now is None else now):
        return True
    holder = ProcessId.parse(owner)
    return holder is not None and is_alive(holder) is False
