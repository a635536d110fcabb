"""Faults with real processes and a real Redis with AOF: shutdowns, restarts, outages.

Each scenario counts every task's runs in Redis (``tests.count``) and reports sent, processed,
lost and duplicated to the suite's table.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis as redis_py

from project.application import create_app
from project.settings import load_settings
from project.up.redis_server import RedisServer
from tests.support.polling import eventually

from .conftest import Ledger


def _app(url: str) -> Any:
    return create_app(load_settings({"REDIS_URL": url}))


def _send(
    app: Any, keys: list[str], seconds: float | None = None, name: str = "tests.count"
) -> dict[str, str]:
    """Publish one task per key; returns each key's task id."""
    ids = {}
    with app.producer_or_acquire() as producer:
        for key in keys:
            if seconds is None:
                sent = app.send_task(name, (key,), producer=producer)
            else:
                sent = app.send_task("tests.count_slowly", (key, seconds), producer=producer)
            ids[key] = sent.id
    return ids


def _wait_for_all(client: Any, keys: list[str], stall: float) -> None:
    """Poll until every key has run, or until ``stall`` seconds pass with no new completion."""
    counters = [f"test:count:{k}" for k in keys]
    done, last_progress = -1, time.monotonic()
    while True:
        now_done = sum(1 for v in client.mget(counters) if v)
        if now_done == len(keys):
            return
        if now_done > done:
            done, last_progress = now_done, time.monotonic()
        elif time.monotonic() - last_progress > stall:
            return  # the caller's ledger and assertion report what is missing
        time.sleep(0.1)


def _diagnosis(client: Any, ids: dict[str, str], output: str, counts_from: Any = None) -> str:
    """What became of the missing tasks: broker state, archive, and the worker's complaints."""
    keys = list(ids)
    counts = (counts_from or client).mget([f"test:count:{k}" for k in keys])
    missing = [k for k, v in zip(keys, counts, strict=True) if not v]
    lost_ids = {ids[k] for k in missing[:5]}
    complaints = [
        line
        for line in output.splitlines()
        if any(level in line for level in ("WARNING/", "ERROR/", "CRITICAL/", "Error"))
        or any(task_id in line for task_id in lost_ids)
    ]
    archived = client.zcard("kit:archived")
    return "\n".join(
        [f"missing {missing[:5]}; {_broker_state(client)}; archived={archived}", *complaints[:80]]
    )


def _broker_state(client: Any) -> str:
    """Where unprocessed messages could be: queue lists and kombu's unacknowledged hash."""
    queues = {k: client.llen(k) for k in client.keys("*") if client.type(k) == "list"}
    unacked, scheduled = client.hlen("unacked"), client.zcard("kit:scheduled")
    return f"lists={queues} unacked={unacked} scheduled={scheduled}"


@pytest.mark.e2e
def test_a_finished_task_is_not_run_again_when_its_worker_dies(
    start_worker: Any, redis: Any, ledger: Ledger
) -> None:
    from tests.support.tasks import count, slow_mark

    worker = start_worker(concurrency=1, env={"KIT_VISIBILITY_TIMEOUT": "3"})
    keys = [f"done-{i}" for i in range(20)]
    for result in [count.delay(k) for k in keys]:
        result.get(timeout=30)
    slow_mark.delay("victim", 30)
    eventually(lambda: redis.llen("test:starts:victim") == 1, 30)
    worker.kill()
    start_worker(concurrency=1, env={"KIT_VISIBILITY_TIMEOUT": "3"})
    eventually(lambda: redis.llen("test:starts:victim") == 2, 60)  # the killed one came back
    processed, lost, duplicated = ledger.count_runs(redis, keys)
    ledger.record(len(keys) + 1, processed + 1, lost, duplicated)
    assert (processed, lost, duplicated) == (20, 0, 0)


@pytest.mark.e2e
def test_warm_shutdown_in_a_busy_period_loses_nothing(
    start_worker: Any, redis: Any, ledger: Ledger
) -> None:
    import project

    keys = [f"busy-{i}" for i in range(200)]
    _send(project.app, keys, seconds=0.05)
    first = start_worker(concurrency=2, extra_args=["--prefetch-multiplier=4"])
    eventually(lambda: len(redis.keys("test:count:busy-*")) >= 40, 60)
    first.signal(signal.SIGTERM)  # warm: running tasks finish, reserved ones go back
    assert first.process.wait(60) == 0
    start_worker(concurrency=2)
    eventually(lambda: len(redis.keys("test:count:busy-*")) == 200, 120)
    processed, lost, duplicated = ledger.count_runs(redis, keys)
    ledger.record(len(keys), processed, lost, duplicated)
    assert (processed, lost, duplicated) == (200, 0, 0)


@pytest.mark.e2e
@pytest.mark.timeout(900)  # 10,000 tasks through one worker on a machine shared with the suite
def test_redis_restart_with_ten_thousand_queued_tasks_processes_them_all(
    start_worker: Any, tmp_path: Any, ledger: Ledger, redis: Any, redis_url: str
) -> None:
    # The tasks need the restarted Redis (those running when it stops fail and are retried)
    # and count their runs on the suite's server, which stays up (tests.count_elsewhere).
    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    try:
        app = _app(server.url)
        keys = [f"q-{i}" for i in range(10_000)]
        ids = _send(app, keys, name="tests.count_elsewhere")
        env = {
            "REDIS_URL": server.url,
            "KIT_VISIBILITY_TIMEOUT": "5",
            "TEST_COUNT_REDIS_URL": redis_url,
        }
        worker = start_worker(concurrency=2, extra_args=["--prefetch-multiplier=8"], env=env)
        client = redis_py.Redis.from_url(server.url, decode_responses=True)
        eventually(lambda: len(redis.keys("test:count:q-*")) >= 1000, 120, interval=0.5)

        server.stop()  # SIGTERM: the AOF is fsynced
        started = time.monotonic()
        with pytest.raises(Exception) as refused:  # a producer during the outage: a clear error
            app.send_task("tests.count", ("during-outage",), retry_policy={"max_retries": 1})
        assert "Connection refused" in str(refused.value) or "Error" in type(refused.value).__name__
        assert time.monotonic() - started < 30
        server.start()

        _wait_for_all(redis, keys, stall=120)
        processed, lost, duplicated = ledger.count_runs(redis, keys)
        ledger.record(len(keys), processed, lost, duplicated)
        assert (processed, lost) == (10_000, 0), _diagnosis(client, ids, worker.output, redis)
        # At-least-once: only tasks in flight at the moment Redis went away may run twice.
        assert duplicated <= 2 * 8, duplicated
        client.close()
    finally:
        server.kill()


@pytest.mark.e2e
def test_idle_workers_consume_again_after_a_ten_second_outage(
    start_worker: Any, tmp_path: Any, ledger: Ledger
) -> None:
    server = RedisServer(tmp_path / "outage", appendonly=True).start()
    try:
        app = _app(server.url)
        start_worker(concurrency=1, env={"REDIS_URL": server.url})
        assert app.send_task("tests.add", (1, 1)).get(timeout=30) == 2
        server.stop()
        time.sleep(10)  # the outage itself
        server.start()
        keys = [f"after-{i}" for i in range(20)]
        _send(app, keys)
        client = redis_py.Redis.from_url(server.url, decode_responses=True)
        eventually(lambda: len(client.keys("test:count:after-*")) == 20, 90)
        processed, lost, duplicated = ledger.count_runs(client, keys)
        ledger.record(len(keys), processed, lost, duplicated)
        assert (processed, lost, duplicated) == (20, 0, 0)
        client.close()
    finally:
        server.kill()
