"""What a benchmark command runs against: its own Redis, an OTLP receiver, a log directory.

One context manager for every command, so they all start from the same clean slate (a fresh
redis-server on a free port, nothing inherited from the developer's) and all remove it on the
way out. The machine facts are read once Redis is up, since its version is one of them.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core.machine import machine_facts
from benchmarks.core.otlp_sink import OTLPSink
from benchmarks.core.processes import PrivateRedis, private_redis

__all__ = ["Session", "session"]


@dataclass(frozen=True)
class Session:
    redis: PrivateRedis
    workdir: Path  # worker logs, removed with the session
    facts: dict[str, object]
    receiver: OTLPSink | None = None

    @property
    def sink(self) -> OTLPSink:
        """The OTLP receiver; only sessions opened with ``receiver=True`` have one."""
        if self.receiver is None:
            raise RuntimeError("this session was opened without an OTLP receiver")
        return self.receiver


@contextlib.contextmanager
def session(*, receiver: bool = False) -> Iterator[Session]:
    """A private Redis, a temporary log directory and (``receiver``) an OTLP receiver; a
    command that exports no telemetry starts none, so no idle gRPC server shares its CPUs."""
    with (
        private_redis() as redis,
        tempfile.TemporaryDirectory(prefix="kit-bench-logs-") as logs,
        OTLPSink() if receiver else contextlib.nullcontext() as sink,
    ):
        yield Session(redis, Path(logs), dict(machine_facts(redis.version())), sink)
