"""Two kit apps in one process, each with its own Redis: each is complete (its worker renews
leases and honours pauses) and neither touches the other's Redis or settings.

The workers run one after the other: Celery's worker runs a task through the process's current
app (``trace_task_ret``), so two workers of different apps cannot share a process; the kit's
own state (settings, Redis, middleware) is per app either way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from project import create_app, kit_of, load_settings
from project.broker.pause import pause, resume
from project.broker.queues import queue_keys
from project.up.redis_server import RedisServer
from tests.support.polling import eventually

LEASE = "4"  # seconds of visibility timeout: leases renewed every second


def _app(server: RedisServer, name: str) -> Celery:
    app = create_app(
        load_settings({"REDIS_URL": server.url, "KIT_VISIBILITY_TIMEOUT": LEASE}), main=name
    )

    @app.task(name="hold", bind=True, shared=False)
    def hold(self: Any, seconds: float) -> str:
        # Visible to the test: the task is running, and its lease can be read meanwhile.
        kit_of(self.app).redis.set("test:running", "1")
        threading.Event().wait(seconds)
        return self.app.main  # type: ignore[no-any-return]

    return app


def _waiting(app: Celery, queue: str) -> int:
    client = kit_of(app).redis
    return sum(int(client.llen(key)) for key in queue_keys(queue))


@pytest.fixture
def apps(redis_server: RedisServer, private_redis: RedisServer) -> Iterator[tuple[Celery, Celery]]:
    first, second = _app(redis_server, "first"), _app(private_redis, "second")
    yield first, second
    for app in (first, second):
        app.close()


def _lease(client: Any) -> float | None:
    """The lease score (last renewal) of the one message the worker holds."""
    held = client.zrange("unacked_index", 0, 0, withscores=True)
    return float(held[0][1]) if held else None


def _run_worker(app: Celery, other: Celery) -> None:
    """This app's worker renews the lease of the message it holds and leaves its paused queue
    alone, in this app's Redis; the other app's Redis sees nothing of it."""
    client = kit_of(app).redis
    assert pause(client, "low")  # before the worker starts: it must never fetch from "low"
    waiting = app.tasks["hold"].apply_async((0,), queue="low")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        result = app.tasks["hold"].apply_async((6,))
        eventually(lambda: client.get("test:running"), 30)
        fetched_at = eventually(lambda: _lease(client))
        # Renewed by this app's own lease keeper, in this app's own Redis.
        eventually(lambda: (_lease(client) or 0.0) > fetched_at, 10)
        assert result.get(timeout=30) == app.main
        assert waiting.state == "PENDING" and _waiting(app, "low") == 1
    other_client = kit_of(other).redis
    assert other_client.get("test:running") is None
    assert not other_client.exists("unacked_index")


def test_two_apps_run_leases_and_pauses_against_their_own_redis(
    apps: tuple[Celery, Celery],
) -> None:
    first, second = apps
    assert kit_of(first).settings.redis.url != kit_of(second).settings.redis.url
    _run_worker(second, first)
    kit_of(second).redis.delete("test:running")
    resume(kit_of(second).redis, "low")
    _run_worker(first, second)
