"""The test session's private redis-server, and the environment that points the kit at it.

The kit reads ``REDIS_URL`` once, when :data:`project.app` is first made (a test module's
``@project.app.task``, a conftest that imports the user's tasks), so the server must answer and
the variable must be set before any of that runs: the plugin calls :meth:`SessionRedis.start`
from its earliest hook. Pointing the kit at a server of its own is also what keeps a test run
away from the developer's Redis: every test starts with ``FLUSHALL``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from project.up.redis_server import RedisServer

__all__ = ["SessionRedis"]

#: Variables that could send a test's tasks or results to another Redis; the session's values
#: replace (or remove) them and the originals come back when the session ends.
_REDIS_VARIABLES = ("REDIS_URL", "KIT_RESULT_BACKEND")


def _die_with_parent() -> None:
    """The server gets SIGKILL when pytest dies (Linux), so a crashed run leaves none behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SessionRedis:
    """One redis-server for the whole session, in a temporary directory of its own."""

    def __init__(self) -> None:
        self.server: RedisServer | None = None
        self._directory: str | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> RedisServer:
        """Start the server (no AOF: the session's data is throw-away) and point the kit's
        variables at it. Idempotent; raises ``RuntimeError`` if the kit's app already exists
        with another Redis."""
        if self.server is not None:
            return self.server
        self._directory = tempfile.mkdtemp(prefix="celery-kit-pytest-")
        server = RedisServer(Path(self._directory) / "redis", preexec_fn=_die_with_parent)
        server.start()
        self.server = server
        saved = (*_REDIS_VARIABLES, "OTEL_SDK_DISABLED")
        self._saved = {name: os.environ.get(name) for name in saved}
        os.environ["REDIS_URL"] = server.url
        os.environ.pop("KIT_RESULT_BACKEND", None)  # results go to the next database of it
        # Spans of test runs belong to no collector; a test of telemetry sets this to false.
        os.environ.setdefault("OTEL_SDK_DISABLED", "true")
        _refuse_an_app_made_elsewhere(server.url)
        return server

    def stop(self) -> None:
        """Kill the server (nothing of it is worth an fsync), remove its files, and restore the
        variables as they were before the session."""
        if self.server is not None:
            self.server.kill()
            self.server = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}


def _refuse_an_app_made_elsewhere(url: str) -> None:
    """If :data:`project.app` was made before the session started (the plugin was loaded late,
    through a conftest's ``pytest_plugins`` after an import that made it), its tasks would go
    to whatever Redis it read: refuse to run rather than test against that one."""
    project = sys.modules.get("project")
    made = vars(project).get("app") if project is not None else None
    if made is None:
        return
    from project.broker.urls import redacted
    from project.lifecycle.kit import kit_of

    used = kit_of(made).settings.redis.url
    if used != url:
        raise RuntimeError(
            f"project.app was made before the celery-kit plugin started its Redis, so it uses "
            f"{redacted(used)}, not the test server: load the plugin earlier (it loads by "
            "itself once celery-kit is installed) or make the app later (in a fixture or a test)"
        )
