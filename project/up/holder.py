"""Who holds ``kit up``'s Redis lock, and whether that process still exists.

The lock's token names its holder: ``host:pid:start:pidns`` (the host name, the process id,
the epoch second it started, and its PID namespace's inode, so two containers that share a
host name are never taken for one another). A ``kit up`` that crashed (SIGKILL, OOM) cannot
release its lock; its TTL frees it. On the same host and PID namespace, the next ``kit up``
need not wait: it sees that the holder's process is gone (or that its pid now belongs to a
younger process) and takes the lock over at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass

__all__ = ["Holder"]

_CLOCK_SLACK = 2.0  # seconds: a process's start time read from /proc is rounded to ticks


def _pid_namespace() -> int:
    """The inode of this process's PID namespace; 0 where /proc does not say (not Linux)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    start: int  # epoch seconds
    pid_namespace: int = 0  # 0: unknown (a token of an older kit up, or not Linux)

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), int(time.time()), _pid_namespace())

    @classmethod
    def parse(cls, token: str) -> Holder | None:
        parts = token.split(":")
        with contextlib.suppress(ValueError):
            if len(parts) == 3:
                return cls(parts[0], int(parts[1]), int(parts[2]))
            if len(parts) == 4:
                return cls(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))
        return None

    @property
    def token(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}:{self.pid_namespace}"

    def is_here(self) -> bool:
        """On this host and in this PID namespace, where its pid means the same process."""
        mine = _pid_namespace()
        return self.host == socket.gethostname() and mine != 0 and self.pid_namespace == mine

    def is_gone(self) -> bool:
        """True only when sure: here, and its pid is free or belongs to a younger process."""
        if not self.is_here():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # someone else's process: it exists
        started = _started_at(self.pid)
        return started is not None and started > self.start + _CLOCK_SLACK

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.start))
        where = "this host" if self.is_here() else f"host {self.host}"
        return f"pid {self.pid} on {where}, since {since}"
