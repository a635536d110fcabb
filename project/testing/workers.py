"""Workers for tests: real ``celery -A project worker`` subprocesses, and a worker in a thread.

A subprocess is the worker as it runs in production (prefork pool, signals, warm shutdown,
SIGKILL), so leases, redelivery and archiving are tested for real; it costs a second or two to
start. The in-thread worker (:func:`in_thread_worker`) starts in a fraction of that and shares
the test's process, so a test can read the app's state directly; it runs the same app, the same
broker transport and the same middleware, only with the ``solo`` pool.

Both consume the Redis that ``REDIS_URL`` names, which the plugin points at its private server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker import WorkController

__all__ = ["CeleryProcess", "WorkerProcess", "in_thread_worker"]

READY_TIMEOUT = 60.0  # seconds: a cold worker imports OpenTelemetry, Pillow and the catalog
STOP_TIMEOUT = 60.0


class CeleryProcess:
    """A ``celery -A <app>`` subprocess whose merged output is collected line by line.

    ``wait_for(text)`` blocks until a line containing ``text`` appears (or the deadline passes),
    so tests never sleep a fixed time waiting for start-up. The process runs in its own session,
    so :meth:`kill` takes its pool children with it.
    """

    #: The project the process runs the code of: first on its ``PYTHONPATH`` (its task modules
    #: import from any working directory) and its working directory unless ``cwd`` is given.
    #: ``None``: the current directory. The plugin's fixtures pass pytest's rootdir.
    default_root: ClassVar[Path | None] = None

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        app: str = "project",
    ) -> None:
        project_root = Path(root) if root is not None else (self.default_root or Path.cwd())
        self.args = [sys.executable, "-m", "celery", "-A", app, *args]
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(project_root), full_env.get("PYTHONPATH", "")) if p
        )
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.args,
            cwd=str(cwd if cwd is not None else project_root),
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed at the end of the output: no ResourceWarning later
            for line in self.process.stdout:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT) -> str:
        """The first line containing ``text``; fails with the output's tail at the deadline or
        when the process exits without printing it."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"{text!r} not seen from {' '.join(self.args[3:])} "
                        f"(exit {self.process.poll()}):\n{self.output[-4000:]}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group past the deadline."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL of the process and its pool children, as in a crash or an OOM kill."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class WorkerProcess(CeleryProcess):
    """``celery -A project worker`` with a unique node name, ready when it logs so.

    Mingle and gossip are off: workers of other tests must not slow this one's start-up.
    """

    def __init__(
        self,
        *,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        app: str = "project",
    ) -> None:
        self.nodename = f"test-{uuid.uuid4().hex[:8]}@%h"
        args = [
            "worker",
            "--loglevel=INFO",
            f"--hostname={self.nodename}",
            f"--concurrency={concurrency}",
            "--without-mingle",
            "--without-gossip",
            *extra_args,
        ]
        if queues:
            args.append(f"--queues={','.join(queues)}")
        super().__init__(args, env=env, cwd=cwd, root=root, app=app)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> WorkerProcess:
        self.wait_for(" ready.", timeout)
        return self


@contextmanager
def in_thread_worker(
    app: Celery, *, pool: str = "solo", **parameters: Any
) -> Iterator[WorkController]:
    """A worker for ``app`` in a thread of this process, started and pinged before it yields.

    Celery's own embedded worker (``celery.contrib.testing``), which is what
    ``celery.contrib.pytest``'s ``celery_worker`` runs; here for any app, so the kit's own app,
    with its real configuration, is the one under test. ``parameters`` go to the
    ``WorkController`` (``queues``, ``concurrency``, ``shutdown_timeout`` ...). The worker
    imports the app's ``imports`` (the catalog and ``KIT_IMPORTS``) as a worker process would.
    """
    from celery.contrib.testing.worker import start_worker

    # The start-up ping's task (celery.ping), which start_worker sends before it yields.
    app.loader.import_task_module("celery.contrib.testing.tasks")
    with start_worker(app, pool=pool, **parameters) as worker:
        try:
            yield worker
        finally:
            _wake_to_stop(app, worker)


def _wake_to_stop(app: Celery, worker: WorkController) -> None:
    """Ask the worker to stop, and ring its queues' bells so that its idle wait (a ``BLPOP``
    of up to a second, :mod:`project.broker.transport`) returns and it sees the request now:
    ``start_worker`` then joins a thread that is already leaving, not one still waiting.

    Best effort, on a client of its own that gives up at once: with the broker down (a test
    that killed it), kombu's connection would retry for seconds, longer than the wait saved."""
    import redis as redis_py
    from celery.worker import state
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from project import keys

    state.should_terminate = 0  # what start_worker sets too, before it joins the thread
    try:
        queues = [queue.name for queue in worker.consumer.task_consumer.queues]
        client = redis_py.Redis.from_url(
            str(app.conf.broker_url),
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        with client, client.pipeline() as pipe:
            for queue in queues:
                pipe.lpush(keys.queue_bell(queue), 1)
            pipe.execute()
    except Exception:  # only a speed-up: the worker stops within its wait anyway
        return
