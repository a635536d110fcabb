"""The test harness: a private redis-server for the session, workers in-thread and as processes.

The session's Redis is started in ``pytest_configure``, before any test module imports
``project``, because the kit reads ``REDIS_URL`` once at import. Every test starts from an empty
Redis (``FLUSHALL``). Tests that stop, restart or kill a server use ``private_redis``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# pytest-celery 1.x's own `celery_worker` fixture needs Docker; these in-thread fixtures from
# Celery's contrib plugin shadow it (Celery's own integration tests import them the same way).
from celery.contrib.pytest import (  # noqa: F401
    celery_enable_logging,
    celery_worker,
    celery_worker_parameters,
    use_celery_app_trap,
)

from tests.support.workers import CeleryProcess, WorkerProcess

if TYPE_CHECKING:
    from project.up.redis_server import RedisServer

# Test-speed settings, applied to this process and inherited by subprocess workers.
TEST_ENV = {
    "KIT_IMPORTS": "tests.support.tasks",
    "KIT_RETRY_BACKOFF": "0.2",  # seconds: retries in tests take fractions of a second
    "KIT_SOFT_SHUTDOWN_TIMEOUT": "2",
    "OTEL_SDK_DISABLED": "true",
}

_session_redis: RedisServer | None = None
_session_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_redis, _session_dir
    port = _free_port()
    # The environment is complete before `project` is first imported: it reads it once.
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    for name in [n for n in os.environ if n.startswith("KIT_")]:
        del os.environ[name]  # the developer's own settings must not leak into tests
    os.environ.update(TEST_ENV)
    from project.up.redis_server import RedisServer

    _session_dir = tempfile.mkdtemp(prefix="kit-tests-")
    _session_redis = RedisServer(Path(_session_dir) / "redis", port=port).start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the ``long`` scenarios out unless ``-m`` asks for them (``-m long``)."""
    if "long" in (config.option.markexpr or ""):
        return
    long_items = [item for item in items if item.get_closest_marker("long")]
    if long_items:
        config.hook.pytest_deselected(items=long_items)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_redis is not None:
        _session_redis.kill()
    if _session_dir is not None:
        shutil.rmtree(_session_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    assert _session_redis is not None
    return _session_redis


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Any]:
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _empty_redis(redis_server: RedisServer) -> None:
    import redis as redis_py

    with redis_py.Redis.from_url(redis_server.url) as client:
        client.flushall()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, restart with AOF, or kill."""
    from project.up.redis_server import RedisServer

    server = RedisServer(tmp_path / "private-redis").start()
    yield server
    server.kill()


# -- in-thread worker (celery.contrib.pytest), bound to the kit's real app --------------------


@pytest.fixture(scope="session")
def celery_includes() -> list[str]:
    return ["celery.contrib.testing.tasks", "tests.support.tasks"]


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    return "solo"


@pytest.fixture
def celery_app() -> Any:
    """The kit's own app, not a test app: tests exercise the real configuration."""
    import project

    project.app.set_current()
    return project.app


# -- subprocess workers --------------------------------------------------------------------


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``start_worker(concurrency=1, queues=None, env={...})``, ready when returned."""
    started: list[CeleryProcess] = []

    def start(**kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for process in started:
        process.kill()
