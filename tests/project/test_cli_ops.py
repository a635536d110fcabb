"""`kit stats`, `kit archived`, `kit queue`, `kit task` against a real Redis and real workers:
the output, and the state in Redis afterwards."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from project.lifecycle.kit import default_kit
from project.retries.archive import Archive, ArchivedTask
from project.up.redis_server import free_port
from tests.support.cli import run_kit
from tests.support.polling import eventually


def kit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, env=env, timeout=120)


def _archive() -> Archive:
    return default_kit().archive()


def _archived_count_task(key: str, queue: str = "default") -> ArchivedTask:
    return ArchivedTask(
        id=f"arch-{key}",
        task="tests.count",
        reason="permanent",
        error_type="PermanentError",
        error="boom",
        queue=queue,
        args=[key],
        attempts=1,
    )


@pytest.fixture
def short_threshold() -> Iterator[None]:
    kit = default_kit()
    with kit.override(delay=dataclasses.replace(kit.settings.delay, durable_delay_threshold=1.0)):
        yield


def test_stats_counts_match_what_was_enqueued(short_threshold: None, redis: Any) -> None:
    from tests.support.tasks import count, noop, on_low

    for _ in range(7):
        noop.delay()
    for _ in range(3):
        on_low.delay()
    for i in range(2):
        count.apply_async((f"s{i}",), countdown=600, queue="critical")
    for i in range(4):
        _archive().add(_archived_count_task(f"a{i}", queue="low"))
    assert kit("queue", "pause", "low").returncode == 0

    done = kit("stats", "--json")
    assert done.returncode == 0, done.stderr
    queues = {q["queue"]: q for q in json.loads(done.stdout)["queues"]}
    assert (queues["default"]["pending"], queues["low"]["pending"]) == (7, 3)
    assert queues["critical"]["scheduled"] == 2 and queues["critical"]["pending"] == 0
    assert queues["low"]["archived"] == 4
    assert queues["low"]["paused"] and not queues["default"]["paused"]
    assert queues["default"]["oldest_pending_age"] >= 0

    table = kit("stats")
    assert table.returncode == 0 and "paused" in table.stdout and "default" in table.stdout


def test_archived_ls_show_and_delete(redis: Any) -> None:
    for i in range(3):
        _archive().add(_archived_count_task(f"d{i}"))
    listed = kit("archived", "ls")
    assert listed.returncode == 0 and "3 archived task(s) shown" in listed.stdout
    shown = json.loads(kit("archived", "show", "arch-d1").stdout)
    assert (shown["task"], shown["args"], shown["error"]) == ("tests.count", ["d1"], "boom")

    assert kit("archived", "delete", "arch-d1").returncode == 0
    assert _archive().get("arch-d1") is None and _archive().count() == 2
    assert "deleted 2" in kit("archived", "delete", "--all").stdout
    assert _archive().count() == 0 and not redis.keys("kit:archived*")


@pytest.mark.e2e
def test_requeueing_five_thousand_archived_tasks_runs_each_exactly_once(
    start_worker: Any, redis: Any
) -> None:
    client = default_kit().redis
    with client.pipeline(transaction=False) as pipe:
        for i in range(5000):
            record = _archived_count_task(f"r{i}")
            pipe.set(f"kit:archived:{record.id}", record.to_json())
            pipe.zadd("kit:archived", {record.id: record.archived_at})
        pipe.execute()
    start_worker(concurrency=2)
    done = kit("archived", "requeue", "--all")
    assert done.returncode == 0 and "requeued 5000 task(s)" in done.stdout, done.stderr

    def all_ran() -> bool:
        return len(redis.keys("test:count:r*")) == 5000 and not any(
            v != "1" for v in redis.mget([f"test:count:r{i}" for i in range(5000)])
        )

    eventually(all_ran, 240, interval=1.0)
    assert _archive().count() == 0
    assert not redis.keys("kit:requeueing:*")


def test_a_requeue_that_died_half_way_loses_no_record(redis: Any) -> None:
    from project.ops.archived import restore_held

    record = _archived_count_task("held")
    redis.set(f"kit:requeueing:{record.id}", record.to_json())  # moved aside, never published
    assert restore_held(default_kit().redis) == 1
    assert _archive().get(record.id) is not None


@pytest.mark.e2e
def test_paused_queue_keeps_its_messages_until_resumed(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import add, on_low

    assert kit("queue", "pause", "low").stdout.strip() == "queue low paused"
    start_worker(concurrency=1)  # started after the pause: honours it
    waiting = on_low.delay()
    assert add.delay(1, 1).get(timeout=30) == 2
    assert waiting.state == "PENDING"
    assert sum(redis.llen(k) for k in redis.keys("low*")) == 1
    assert kit("queue", "resume", "low").returncode == 0
    assert waiting.get(timeout=30) == "low"


@pytest.mark.e2e
def test_pausing_a_running_worker_takes_effect_within_seconds(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import add

    worker = start_worker(concurrency=1)
    assert add.delay(1, 2).get(timeout=30) == 3
    kit("queue", "pause", "default")
    worker.wait_for("queue default paused", timeout=10)  # its watcher looks every second
    result = add.delay(2, 2)
    eventually(lambda: sum(redis.llen(k) for k in redis.keys("default*")) == 1, 5)
    assert result.state == "PENDING"
    kit("queue", "resume", "default")
    assert result.get(timeout=30) == 4


@pytest.mark.e2e
def test_task_show_run_and_cancel_a_scheduled_task(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker(env={"KIT_DURABLE_DELAY_THRESHOLD": "1", "KIT_FORWARDER_INTERVAL": "0.2"})
    later = count.apply_async(("later",), countdown=3600)
    shown = json.loads(kit("task", "show", later.id).stdout)
    assert shown["scheduled"]["task"] == "tests.count"

    assert kit("task", "run", later.id).returncode == 0
    assert later.get(timeout=30) == 1

    doomed = count.apply_async(("doomed",), countdown=3600)
    assert "removed from the schedule" in kit("task", "cancel", doomed.id).stdout
    assert not redis.exists(f"kit:scheduled:task:{doomed.id}")
    assert doomed.state == "REVOKED"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queue", "pause", "urgent"], "unknown queue 'urgent'; queues: critical, default, low"),
        (["task", "show", "nope"], "no task 'nope' is known"),
        (["task", "run", "nope"], "no task 'nope' is known"),
        (["archived", "show", "nope"], "no archived task 'nope'"),
        (["archived", "requeue"], "give one task id, or --all"),
    ],
)
def test_expected_errors_are_one_line_and_exit_one(args: list[str], message: str) -> None:
    done = kit(*args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_redis_is_one_line_for_every_command() -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for args in (["stats"], ["archived", "ls"], ["queue", "pause", "low"]):
        done = kit(*args, env=env)
        assert done.returncode == 1 and "is unreachable" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_task_cancel_terminate_stops_a_running_task(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import slow_mark

    start_worker(concurrency=1)
    running = slow_mark.delay("terminated", 30)
    eventually(lambda: redis.llen("test:starts:terminated") == 1, 30)
    done = kit("task", "cancel", running.id, "--terminate")
    assert "revoked and terminated if running" in done.stdout
    eventually(lambda: running.state == "REVOKED", 30)
    assert redis.llen("test:finishes:terminated") == 0
    # Acknowledged (just after the REVOKED state is stored), not handed back to run again.
    eventually(lambda: redis.hlen("unacked") == 0, 10)
