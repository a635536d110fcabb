"""Real ``celery -A project worker`` (and beat) subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0  # seconds: a cold worker imports OpenTelemetry, Pillow and the catalog
STOP_TIMEOUT = 60.0


class CeleryProcess:
    """A celery subprocess whose merged output is collected line by line.

    ``wait_for(text)`` blocks until a line containing ``text`` appears (or the deadline passes),
    so tests never sleep a fixed time waiting for start-up.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] = ROOT,
    ) -> None:
        self.args = [sys.executable, "-m", "celery", "-A", "project", *args]
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
        )
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.args,
            cwd=str(cwd),
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
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class WorkerProcess(CeleryProcess):
    """``celery -A project worker`` with a unique node name, ready when it logs so."""

    def __init__(
        self,
        *,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] = ROOT,
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
        super().__init__(args, env=env, cwd=cwd)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> WorkerProcess:
        self.wait_for(" ready.", timeout)
        return self
