"""``kit up``: Redis (embedded when none answers), a worker, beat, Flower and the console
(``kit web``), stopped in order.

Start-up: use ``REDIS_URL`` when something answers there; when the URL is local and nothing
answers, start an embedded Redis with AOF under ``$KIT_STATE_DIR/redis``. Then take two locks so
a second ``kit up`` says so instead of starting a second beat (two beats double-fire every
schedule): a file lock for this state directory, and a Redis lock for this broker. The Redis
lock of a ``kit up`` that crashed is taken over at once when its process is gone from this host
(:mod:`project.up.holder`); from elsewhere, its TTL frees it, as the refusal says.

Shutdown (Ctrl-C or SIGTERM): beat first (no new scheduled tasks), then Flower and the console
(no new actions on tasks), then the worker
with a warm shutdown (running tasks finish or go back to Redis, ETA tasks held in memory are
restored), and Redis last, whose SIGTERM handler fsyncs the AOF. No queued task is lost.
Every child, the embedded Redis included, runs in a session of its own: a terminal's Ctrl-C
signals its whole foreground process group, which then holds only ``kit up``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import redis

from project import keys
from project.broker.connections import connect
from project.broker.urls import redacted as redacted_url
from project.config.env import Env
from project.console.settings import ConsoleSettings
from project.coordination.locks import RedisLock
from project.errors import AlreadyRunningError, RedisUnavailableError
from project.settings import Settings
from project.up.holder import Holder
from project.up.redis_server import RedisServer

__all__ = ["Supervisor"]

LOCK_TTL = 30  # seconds; refreshed every LOCK_REFRESH, so a crashed supervisor frees it soon
LOCK_REFRESH = 10.0  # seconds
CHILD_STOP_MARGIN = 30.0  # seconds a child gets to exit after its last signal before SIGKILL
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor itself dies (Linux), so none is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: How children are started: celery's command line, and the kit's own (``kit web``).
CELERY = [sys.executable, "-m", "celery", "-A", "project"]
KIT = [sys.executable, "-m", "project.cli"]


class _Child:
    """A celery (or ``kit``) subprocess whose output is relayed with a prefix."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        out: IO[str],
        program: list[str] = CELERY,
    ) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [*program, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Own session: the terminal's Ctrl-C reaches only the supervisor, which then stops
            # the children in a safe order instead of all at once.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._relay = threading.Thread(target=self._pump, args=(out,), daemon=True)
        self._relay.start()

    def _pump(self, out: IO[str]) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed at the end of the child's output
            for line in self.process.stdout:
                out.write(f"[{self.name}] {line}")
                out.flush()

    def stop(self, *steps: tuple[signal.Signals, float]) -> int:
        """Send each signal in turn, waiting its time for an exit; SIGKILL the group last."""
        for signum, timeout in steps:
            if self.process.poll() is not None:
                break
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        self._relay.join(5)
        return code


class Supervisor:
    def __init__(self, settings: Settings, out: IO[str] | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        self.state_dir = Path(settings.up.state_dir).resolve()
        self.redis_url = settings.redis.url
        self.embedded: RedisServer | None = None
        self.children: dict[str, _Child] = {}
        self._lock_file: IO[str] | None = None
        self._lock_token = Holder.me().token
        self._stop = threading.Event()

    def say(self, message: str) -> None:
        self.out.write(f"kit: {message}\n")
        self.out.flush()

    # -- start-up ---------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, wait for Ctrl-C/SIGTERM or a child's death, stop everything."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_directory()
        # From here to the end, Ctrl-C and SIGTERM only ask for the orderly stop: a second
        # Ctrl-C while Redis fsyncs its AOF does not interrupt that with a traceback.
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._ensure_redis()
            if self._stop.is_set():
                return 0
            client = connect(self.redis_url, self.settings.redis, socket_timeout=5.0)
            lock = self._lock_redis(client)
            try:
                return self._run_children(lock)
            finally:
                with contextlib.suppress(redis.RedisError):  # an external Redis may be gone
                    lock.release()
                client.close()
        finally:
            if self.embedded is not None:
                self.say("stopping the embedded Redis (AOF fsync)")
                self.embedded.stop()
                self.say("stopped Redis")
            self._unlock_directory()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _lock_directory(self) -> None:
        path = self.state_dir / "kit-up.lock"
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunningError(
                f"kit up is already running in {self.state_dir} ({holder}); "
                "stop it (Ctrl-C in its terminal) before starting another"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _unlock_directory(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _ensure_redis(self) -> None:
        shown = redacted_url(self.redis_url)
        if _answers(
            connect(
                self.redis_url, self.settings.redis, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        ):
            self.say(f"using Redis at {shown}")
            return
        parts = urlsplit(self.redis_url)
        if parts.scheme != "redis" or parts.hostname not in LOCAL_HOSTS:
            raise RedisUnavailableError(
                f"nothing answers at REDIS_URL={shown}; start that Redis, or unset REDIS_URL "
                "to let kit up run an embedded one"
            )
        self.embedded = RedisServer(
            self.state_dir / "redis",
            port=parts.port or 6379,
            appendonly=True,
            password=unquote(parts.password) if parts.password else None,
            preexec_fn=_die_with_parent,  # a killed kit up leaves no Redis behind
            new_session=True,  # like the other children: stopped by kit up, last
        ).start()
        self.say(
            f"no Redis answered at {shown}: started an embedded Redis on port "
            f"{self.embedded.port} with AOF persistence in {self.embedded.directory}"
        )

    def _lock_redis(self, client: redis.Redis) -> RedisLock:
        """Take the broker's lock; a holder that is gone (same host, its process dead) is
        taken over at once, another one refuses this start with one line saying who it is."""
        lock = RedisLock(client, keys.UP_LOCK, self._lock_token, LOCK_TTL)
        for _ in range(3):  # the holder may expire or be taken over between two steps
            if lock.acquire():
                return lock
            token = lock.holder()
            if token is None:
                continue
            holder = Holder.parse(token)
            if holder is None or not holder.is_gone():
                raise AlreadyRunningError(_refusal(client, token, holder))
            # Compare-and-delete: only that dead holder's token, never a new one's.
            if RedisLock(client, keys.UP_LOCK, token, LOCK_TTL).release() and lock.acquire():
                self.say(f"the last kit up ({holder.describe()}) is gone; took over its lock")
                return lock
        raise AlreadyRunningError(
            "kit up could not take its lock on this Redis: other kit ups are starting; "
            "start one at a time"
        )

    # -- children ---------------------------------------------------------------------------

    def _run_children(self, lock: RedisLock) -> int:
        console = ConsoleSettings.from_env(Env(os.environ))  # a malformed one stops us here
        env = dict(os.environ, REDIS_URL=self.redis_url, PYTHONUNBUFFERED="1")
        auth = self.settings.up.flower_basic_auth
        if auth is None:
            auth = f"admin:{secrets.token_urlsafe(12)}"
            self.say(f"FLOWER_BASIC_AUTH is not set; generated for this run: {auth}")
        env["FLOWER_BASIC_AUTH"] = auth  # an env var, not argv: argv is visible in `ps`
        env["FLOWER_PORT"] = str(self.settings.up.flower_port)
        env["FLOWER_ADDRESS"] = self.settings.up.flower_address
        # Flower keeps its task history across restarts.
        env.setdefault("FLOWER_PERSISTENT", "True")
        env.setdefault("FLOWER_DB", str(self.state_dir / "flower.db"))
        try:
            self._spawn("worker", ["worker", "--loglevel=INFO"], env)
            beat_db = str(self.state_dir / "celerybeat-schedule")
            self._spawn("beat", ["beat", "--loglevel=INFO", f"--schedule={beat_db}"], env)
            self._spawn("flower", ["flower"], env)
            self._spawn("console", ["web"], env, program=KIT)
            self._announce(console)
            return self._watch(lock)
        finally:
            self._stop_children()

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str], program: list[str] = CELERY
    ) -> None:
        if not self._stop.is_set():  # a Ctrl-C during start-up starts nothing more
            self.children[name] = _Child(name, args, env, self.out, program)

    def _announce(self, console: ConsoleSettings) -> None:
        """Say where Flower and the console are once they listen, then that all runs."""
        auth = "KIT_WEB_BASIC_AUTH" if console.credentials_source == "KIT_WEB_BASIC_AUTH" else None
        listeners = (
            ("flower", "Flower", self.settings.up.flower_address, self.settings.up.flower_port),
            ("console", "Console", console.address, console.port),
        )
        for name, title, host, port in listeners:
            if not self._listening(name, host, port):
                return
            where = auth if name == "console" and auth else "FLOWER_BASIC_AUTH"
            self.say(f"{title}: http://{host}:{port}/ (basic auth from {where})")
        self.say("running; press Ctrl-C to stop")

    def _listening(self, name: str, host: str, port: int) -> bool:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return True
            child = self.children.get(name)
            if child is None or child.process.poll() is not None:
                return False
            self._stop.wait(0.1)
        return False

    def _watch(self, lock: RedisLock) -> int:
        next_refresh = time.monotonic() + LOCK_REFRESH
        while not self._stop.wait(0.2):
            for name, child in self.children.items():
                if child.process.poll() is not None:
                    self.say(f"{name} exited with code {child.process.returncode}; stopping")
                    return 1
            if time.monotonic() >= next_refresh:
                with contextlib.suppress(redis.RedisError):
                    lock.renew()
                next_refresh = time.monotonic() + LOCK_REFRESH
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self._stop.is_set():
            name = signal.Signals(signum).name
            self.say(f"{name}: stopping beat, Flower, the console, worker, then Redis")
        self._stop.set()

    def _stop_children(self) -> None:
        grace = self.settings.broker.soft_shutdown_timeout
        plans: dict[str, tuple[tuple[signal.Signals, float], ...]] = {
            "beat": ((signal.SIGTERM, CHILD_STOP_MARGIN),),
            "flower": ((signal.SIGTERM, CHILD_STOP_MARGIN),),
            "console": ((signal.SIGTERM, CHILD_STOP_MARGIN),),
            # Warm shutdown: running tasks get the soft shutdown time to finish. Then a cold
            # one: Celery's soft shutdown gives them that time again, stops them, and their
            # late-acknowledged messages go back to Redis.
            "worker": ((signal.SIGTERM, grace), (signal.SIGQUIT, grace + CHILD_STOP_MARGIN)),
        }
        for name in ("beat", "flower", "console", "worker"):
            child = self.children.pop(name, None)
            if child is not None:
                code = child.stop(*plans[name])
                self.say(f"stopped {name} (exit code {code})")


def _refusal(client: redis.Redis, token: str, holder: Holder | None) -> str:
    who = holder.describe() if holder is not None else f"lock held by {token!r}"
    message = (
        f"kit up is already running against this Redis ({who}) and runs the only beat: "
        "stop it first (Ctrl-C in its terminal), or point REDIS_URL at another Redis"
    )
    if holder is not None and holder.is_here():
        return message  # alive here: it was checked; waiting would not help
    with contextlib.suppress(redis.RedisError):
        left = int(client.pttl(keys.UP_LOCK))
        if left > 0:
            return f"{message}; if it has crashed, its lock frees within {-(-left // 1000)} s"
    return f"{message}; if it has crashed, its lock frees within {LOCK_TTL} s"


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
