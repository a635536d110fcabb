"""celery-kit's pytest plugin (entry point ``celery_kit``): test your tasks against a real Redis
and real workers, with the kit's semantics (leases, retries, the archive, de-duplication).

It loads by itself once celery-kit is installed (``-p no:celery_kit`` turns it off). For the
whole session it starts a private redis-server and points ``REDIS_URL`` at it before anything
can make :data:`project.app`; every test starts from an empty Redis. Under pytest-xdist each
worker process is a session of its own, with its own Redis: tests in parallel never share one.
Everything heavier is a fixture a test asks for by name:

==========================  ================================================================
``kit_redis_server``        the session's :class:`~project.up.redis_server.RedisServer`
``kit_redis_url``           its URL (what ``REDIS_URL`` says)
``kit_redis``               a redis-py client on it, ``decode_responses=True``
``kit_private_redis``       a server of the test's own, to stop, restart (AOF) or kill
``kit_app``                 :data:`project.app`, made Celery's current app
``kit_worker``              a worker for ``kit_app`` in a thread (solo pool), for the test
``kit_worker_parameters``   session: options for ``kit_worker`` (``{"queues": [...]}``), {}
``kit_archive``             ``kit_app``'s :class:`~project.retries.archive.Archive`
``kit_start_worker``        ``kit_start_worker(concurrency=1, queues=None, env={...})``: a
                            ``celery -A project worker`` subprocess, ready; killed after
                            the test, its output's tail printed when the test failed
==========================  ================================================================

Every name starts with ``kit_``: pytest-celery's fixtures (``celery_worker``, ``celery_setup``
...) and Celery's ``celery.contrib.pytest`` ones keep theirs, whichever plugin loads first. A
project that wants ``celery_worker`` to be the kit's in-thread worker says so in its conftest::

    @pytest.fixture
    def celery_worker(kit_worker): return kit_worker

A project whose app is its own ``create_app(settings)`` overrides ``kit_app`` to return it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from project.testing.session import SessionRedis
from project.testing.workers import WorkerProcess, in_thread_worker

if TYPE_CHECKING:
    import redis as redis_py
    from celery import Celery
    from celery.worker import WorkController

    from project.retries.archive import Archive
    from project.up.redis_server import RedisServer

_SESSION = pytest.StashKey[SessionRedis]()


def _start(config: pytest.Config) -> None:
    if _SESSION in config.stash:
        return
    session = config.stash[_SESSION] = SessionRedis()
    config.add_cleanup(session.stop)
    try:
        session.start()
    except Exception as exc:
        session.stop()
        raise pytest.UsageError(
            f"celery-kit's pytest plugin: {exc} (turn the plugin off with -p no:celery_kit)"
        ) from exc


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Start the session's Redis before the first conftest is imported: a conftest that
    imports the project's tasks may make :data:`project.app`, which reads ``REDIS_URL`` then."""
    options = early_config.known_args_namespace
    if not (getattr(options, "help", False) or getattr(options, "version", False)):
        _start(early_config)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The latest point the Redis may start: for a plugin loaded by a conftest's
    ``pytest_plugins``, which misses the earlier hook."""
    if not config.option.help:
        _start(config)


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kit_redis_server(pytestconfig: pytest.Config) -> RedisServer:
    """The session's redis-server (no AOF). Tests that stop or kill a server use
    ``kit_private_redis`` instead: every other test shares this one."""
    server = pytestconfig.stash[_SESSION].server
    assert server is not None, "the celery-kit plugin's Redis is not running"
    return server


@pytest.fixture(scope="session")
def kit_redis_url(kit_redis_server: RedisServer) -> str:
    return kit_redis_server.url


@pytest.fixture
def kit_redis(kit_redis_url: str) -> Iterator[redis_py.Redis]:
    """A client on the session's Redis, to look at what tasks left there (strings, not bytes)."""
    import redis as redis_py

    client = redis_py.Redis.from_url(kit_redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _kit_empty_redis(kit_redis_server: RedisServer) -> None:
    """Every test starts from an empty Redis: no queued task, unique lock or archive record of
    an earlier test can change its outcome. Only ever the plugin's own server."""
    import redis as redis_py

    with redis_py.Redis.from_url(kit_redis_server.url) as client:
        client.flushall()


@pytest.fixture
def kit_private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, restart with AOF, or kill; killed after."""
    from project.up.redis_server import RedisServer

    server = RedisServer(tmp_path / "private-redis").start()
    yield server
    server.kill()


# -- the app and its workers ----------------------------------------------------------------


@pytest.fixture
def kit_app() -> Celery:
    """The kit's own app with its real configuration (not a test app), made current, as an
    in-thread worker's start-up ping needs."""
    import project

    project.app.set_current()
    return project.app


@pytest.fixture(scope="session")
def kit_worker_parameters() -> Mapping[str, Any]:
    """Options for ``kit_worker``'s ``WorkController``; override to consume other queues."""
    return {}


@pytest.fixture
def kit_worker(
    kit_app: Celery, kit_worker_parameters: Mapping[str, Any]
) -> Iterator[WorkController]:
    """A worker for ``kit_app`` in a thread, consuming the session's Redis, stopped after."""
    with in_thread_worker(kit_app, **kit_worker_parameters) as worker:
        yield worker


@pytest.fixture
def kit_archive(kit_app: Celery) -> Archive:
    """Where tasks that failed for good are recorded (read ``get(task_id)``, ``records()``)."""
    from project.lifecycle.kit import kit_of

    return kit_of(kit_app).archive()


#: Where the outcome of a test's call phase is kept, for its fixtures' teardown.
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()
WORKER_LOG_TAIL = 200  # lines of each worker's output printed when its test failed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_REPORT] = report


@pytest.fixture
def kit_start_worker(
    pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``kit_start_worker(concurrency=1, queues=None, env={...})`` starts a real
    ``celery -A project worker`` from pytest's rootdir (on its ``PYTHONPATH``) and returns it
    ready; each is SIGKILLed after the test (its messages return by their lease). When the
    test failed, the tail of each worker's output is printed with the failure: a task that
    never finished is explained there, not in the test's own assertion."""
    started: list[WorkerProcess] = []

    def start(**kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("root", pytestconfig.rootpath)
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        return worker.wait_ready()

    yield start
    report = request.node.stash.get(_CALL_REPORT, None)
    for process in started:
        process.kill()
        if report is not None and report.failed:
            tail = "\n".join(process.output.splitlines()[-WORKER_LOG_TAIL:])
            print(f"--- {' '.join(process.args[3:])}: last {WORKER_LOG_TAIL} lines ---\n{tail}")
