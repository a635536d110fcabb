"""`kit queue pause`/`resume` against real workers: a pause holds from the moment it is written,
on the idle and the busy path, and a resume never makes a worker consume a queue it was not
started with."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import pytest

from project import keys
from tests.support.cli import run_kit
from tests.support.polling import eventually


def kit(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, timeout=120)


def _queued(redis: Any, queue: str) -> int:
    return sum(int(redis.llen(k)) for k in redis.keys(f"{queue}*") if redis.type(k) == "list")


@pytest.mark.e2e
def test_nothing_sent_after_kit_queue_pause_returns_runs_on_an_idle_worker(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import add, count

    start_worker(concurrency=1)
    assert add.delay(1, 1).get(timeout=30) == 2  # up, and idle: blocked waiting for work
    assert kit("queue", "pause", "low").stdout.strip() == "queue low paused"
    held = [f"held-{i}" for i in range(20)]
    for key in held:
        count.apply_async((key,), queue="low")
    # Twenty fetches, each after an idle spell, each free to pick `low` were it not paused.
    for i in range(20):
        assert add.delay(i, 1).get(timeout=30) == i + 1
    assert redis.mget([f"test:count:{k}" for k in held]) == [None] * 20
    assert _queued(redis, "low") == 20
    assert kit("queue", "resume", "low").stdout.strip() == "queue low resumed"
    eventually(lambda: all(redis.mget([f"test:count:{k}" for k in held])), 30)


@pytest.mark.e2e
def test_a_pause_holds_from_the_instant_it_is_written_on_a_busy_worker(
    start_worker: Any, redis: Any
) -> None:
    """The pause is written in one transaction with a snapshot of what had started and what
    was fetched: whatever starts afterwards must have been fetched before it."""
    from tests.support.tasks import add, record_queue

    sent = {record_queue.apply_async((f"t{i}",), queue="low").id: f"low:t{i}" for i in range(400)}
    start_worker(concurrency=2)
    eventually(lambda: redis.llen("test:served") >= 20, 60, interval=0.005)
    with redis.pipeline(transaction=True) as pipe:
        pipe.sadd(keys.PAUSED, "low")
        pipe.lrange("test:served", 0, -1)
        pipe.hvals("unacked")
        _, started, records = pipe.execute()
    fetched = {sent[json.loads(r)[0]["headers"]["id"]] for r in records}
    assert len(fetched) <= 2  # one per process (prefetch multiplier 1)
    assert add.delay(2, 3).get(timeout=30) == 5  # the worker fetched again since
    eventually(lambda: redis.hlen("unacked") == 0, 30)
    started_after = set(redis.lrange("test:served", 0, -1)) - set(started)
    assert started_after <= fetched, f"{len(started_after - fetched)} started after the pause"
    assert _queued(redis, "low") == 400 - len(set(started) | started_after)


@pytest.mark.e2e
def test_resume_does_not_widen_a_worker_to_queues_it_was_not_started_with(
    start_worker: Any, redis: Any
) -> None:
    import project
    from tests.support.tasks import add, on_low

    worker = start_worker(concurrency=1, queues=["default"])
    node = worker.nodename.replace("%h", socket.gethostname())
    assert kit("queue", "pause", "low").returncode == 0
    worker.wait_for("queue low paused", 30)
    assert kit("queue", "resume", "low").returncode == 0
    worker.wait_for("queue low resumed", 30)

    replies = project.app.control.inspect([node], timeout=10, limit=1).active_queues()
    assert [q["name"] for q in replies[node]] == ["default"]
    waiting = on_low.delay()
    assert add.delay(1, 2).get(timeout=30) == 3
    assert "consuming from low" not in worker.output
    assert waiting.state == "PENDING" and _queued(redis, "low") == 1
