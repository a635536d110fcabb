"""Time limits end runaway tasks (and archive them); workers ride out a Redis outage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from project.application import create_app
from project.lifecycle.kit import default_kit
from project.retries.archive import ArchivedTask, Reason
from project.settings import load_settings
from project.up.redis_server import RedisServer
from tests.support.polling import eventually


def _archived(task_id: str) -> ArchivedTask:
    archive = default_kit().archive()
    return eventually(lambda: archive.get(task_id), 30)


@pytest.mark.e2e
def test_soft_time_limit_raises_inside_the_task_and_archives_it(start_worker: Any) -> None:
    from tests.support.tasks import sleepy

    start_worker()
    result = sleepy.delay(10)
    record = _archived(result.id)
    assert record.error_type == "SoftTimeLimitExceeded"
    assert record.reason == Reason.UNEXPECTED
    assert record.queue == "default"


@pytest.mark.e2e
def test_hard_time_limit_kills_the_task_and_archives_it(start_worker: Any) -> None:
    from tests.support.tasks import add, stubborn

    worker = start_worker()
    result = stubborn.delay(30)
    record = _archived(result.id)
    assert record.error_type == "TimeLimitExceeded"
    assert record.task == "tests.stubborn"
    assert record.args == [30]
    assert (record.queue, record.attempts) == ("default", 1)  # the request's own context
    assert "Hard time limit" in worker.wait_for("Hard time limit")
    assert add.delay(1, 1).get(timeout=30) == 2  # the pool replaced the killed process


@pytest.mark.e2e
def test_worker_reconnects_after_redis_restarts(
    start_worker: Any, private_redis: RedisServer
) -> None:
    app = create_app(load_settings({"REDIS_URL": private_redis.url}))
    start_worker(env={"REDIS_URL": private_redis.url})
    assert app.send_task("tests.add", args=[1, 2]).get(timeout=30) == 3

    private_redis.restart(appendonly=True)

    result = app.send_task("tests.add", args=[3, 4])
    assert result.get(timeout=90) == 7


def test_harness_redis_keeps_data_across_an_aof_restart(private_redis: RedisServer) -> None:
    import redis as redis_py

    private_redis.restart(appendonly=True)
    with redis_py.Redis.from_url(private_redis.url) as client:
        client.set("kept", "yes")
    private_redis.restart()
    with redis_py.Redis.from_url(private_redis.url) as client:
        assert client.get("kept") == b"yes"


def test_harness_redis_loses_unsynced_data_when_killed_without_aof(tmp_path: Path) -> None:
    import redis as redis_py

    server = RedisServer(tmp_path / "volatile").start()
    with redis_py.Redis.from_url(server.url) as client:
        client.set("lost", "yes")
    server.kill()
    server.start()
    try:
        with redis_py.Redis.from_url(server.url) as client:
            assert client.get("lost") is None
    finally:
        server.kill()
