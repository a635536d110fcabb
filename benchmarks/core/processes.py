"""Processes a benchmark owns: its private Redis, its workers and its producer subprocesses.

Workers and producers run in their own session (process group), so a Ctrl-C in the terminal
reaches only the benchmark, which then kills each group it started: ``finally`` blocks for the
normal path, an ``atexit`` hook as the last resort. Workers are SIGKILLed, not shut down
warmly: a run is over once its tasks are counted, Redis is flushed before the next one, and
the kit's soft shutdown would otherwise wait up to 30 s per run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from project.up.redis_server import RedisServer

__all__ = [
    "ROOT",
    "PrivateRedis",
    "ProducerError",
    "Worker",
    "WorkerGroup",
    "child_env",
    "private_redis",
    "run_producer",
]

ROOT = Path(__file__).resolve().parents[2]
KILL_TIMEOUT = 10.0  # seconds for a SIGKILLed process group to be reaped
PRODUCER_TIMEOUT = 600.0  # seconds for one producer subprocess
PRODUCER_MODULE = "benchmarks.core.producer"
LOG_TAIL_LINES = 30

#: Inherited variables that would change what a worker does behind the scenario's back:
#: the developer's kit settings, stale benchmark settings, Celery's own env overrides
#: (CELERY_BROKER_URL beats broker_url), OpenTelemetry exporter settings (a scenario turns
#: telemetry off explicitly when it means to), the reference libraries' own (RQ_REDIS_URL ...)
#: and the kit's broker URL.
_SCRUBBED_PREFIXES = ("KIT_", "BENCH_", "CELERY_", "OTEL_", "RQ_", "DRAMATIQ_")
_SCRUBBED_NAMES = frozenset({"REDIS_URL"})

_live_groups: set[int] = set()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live_groups):
        _kill_group(pgid)
    _live_groups.clear()


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without settings that would leak into a scenario."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_PREFIXES) and name not in _SCRUBBED_NAMES
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    # A killed worker loses buffered output; the log is what explains a failed run.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class PrivateRedis:
    """A started :class:`RedisServer` of our own and a client for the measurements."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.client = redis.Redis.from_url(server.url, socket_timeout=10.0)

    @property
    def url(self) -> str:
        return self.server.url

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def flushall(self) -> None:
        self.client.flushall()

    def keys_in_db(self, db: int) -> int:
        keyspace = self.client.info("keyspace")
        entry = keyspace.get(f"db{db}")
        return int(entry["keys"]) if isinstance(entry, dict) else 0


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A fresh redis-server on a free port in a temporary directory, killed on the way out."""
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as directory:
        server = RedisServer(Path(directory) / "redis")
        try:
            server.start()
            private = PrivateRedis(server)
            try:
                yield private
            finally:
                private.client.close()
        finally:
            server.kill()


class _KilledOnExit:
    """``with`` a worker (or a group): killed on the way out, whatever happened."""

    def kill(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


class Worker(_KilledOnExit):
    """``python -m <module> <args>`` (Celery unless told) in its own process group, its output
    in ``log_path``. ``error_marks`` are what the program's error log lines contain."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        module: str = "celery",
        error_marks: Sequence[str] = ("ERROR/", "CRITICAL/"),
    ) -> None:
        self.args = [sys.executable, "-m", module, *args]
        self.log_path = log_path
        self.error_marks = tuple(error_marks)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=str(ROOT),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _live_groups.add(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        """SIGKILL the whole group: the celery main process and its pool children."""
        pgid = self.process.pid
        _kill_group(pgid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(KILL_TIMEOUT)
        _live_groups.discard(pgid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(no log)"

    def logged_errors(self) -> list[str]:
        """ERROR/CRITICAL lines: the log is the only place a refused or failed task shows."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return [line for line in text.splitlines() if any(m in line for m in self.error_marks)]
        return []

    def describe(self) -> str:
        return " ".join(self.args[2:])


class WorkerGroup(_KilledOnExit):
    """Several worker processes run as one layout (two ``celery worker`` processes, say):
    the same interface as :class:`Worker`, over all of them."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def exit_code(self) -> int | None:
        """The first exit code of a worker that ended: one dead process spoils the run."""
        return next((c for w in self.workers if (c := w.exit_code()) is not None), None)

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail(lines)}" for w in self.workers)

    def logged_errors(self) -> list[str]:
        return [line for worker in self.workers for line in worker.logged_errors()]

    def describe(self) -> str:
        return " + ".join(worker.describe() for worker in self.workers)


class ProducerError(RuntimeError):
    """A producer subprocess failed or printed no result."""


def run_producer(
    entry: str, count: int, env: Mapping[str, str], timeout: float = PRODUCER_TIMEOUT
) -> dict[str, object]:
    """``python -m benchmarks.core.producer <entry> <count>`` in its own process group; its
    JSON result. The group is killed if it outlives ``timeout`` or we are interrupted."""
    args = [sys.executable, "-m", PRODUCER_MODULE, entry, str(count)]
    process = subprocess.Popen(
        args,
        cwd=str(ROOT),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _live_groups.add(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProducerError(f"`{' '.join(args[1:])}` took over {timeout:.0f} s") from None
    finally:
        _kill_group(process.pid)  # also any thread or child it left behind
        process.wait(KILL_TIMEOUT)
        _live_groups.discard(process.pid)
    lines = stdout.strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = "\n".join(stderr.splitlines()[-LOG_TAIL_LINES:])
        raise ProducerError(f"`{' '.join(args[1:])}` exited with {process.returncode}:\n{tail}")
    result: dict[str, object] = json.loads(lines[-1])
    return result
