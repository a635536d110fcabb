"""`kit task ls|delete|archive|run|requeue` and `kit queue purge` as real subprocesses, against
a real Redis and real workers: the output, the exit code, and the state in Redis afterwards."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from project.broker.queues import queue_keys
from project.lifecycle.kit import default_kit
from project.ops.stats import collect
from tests.support.cli import run_kit
from tests.support.polling import eventually

DURABLE = {"KIT_DURABLE_DELAY_THRESHOLD": "1", "KIT_FORWARDER_INTERVAL": "0.2"}


def kit(*args: str) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, env=DURABLE, timeout=120)


def _stats(queue: str = "default") -> dict[str, Any]:
    done = kit("stats", "--json")
    assert done.returncode == 0, done.stderr
    return next(q for q in json.loads(done.stdout)["queues"] if q["queue"] == queue)


def _counted(queue: str = "default") -> dict[str, Any]:
    """What `kit stats` counts, read in this process (no second process start-up)."""
    snapshot = collect(default_kit().app, default_kit().redis, default_kit().settings, timeout=0.1)
    return next(dataclasses.asdict(q) for q in snapshot.queues if q.queue == queue)


@pytest.fixture
def short_threshold() -> Iterator[None]:
    kit_ = default_kit()
    delay = dataclasses.replace(kit_.settings.delay, durable_delay_threshold=1.0)
    with kit_.override(delay=delay):
        yield


def test_ls_pages_through_a_queue_with_its_cursor(redis: Any) -> None:
    from tests.support.tasks import count

    sent = [count.delay(f"ls{i}").id for i in range(5)]
    first = kit("task", "ls", "--queue", "default", "--state", "pending", "--limit", "3", "--json")
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert [e["id"] for e in page["entries"]] == sent[:3]
    assert page["entries"][0]["args"] == '["ls0"]' and page["entries"][0]["state"] == "pending"
    rest = json.loads(
        kit("task", "ls", "--limit", "3", "--cursor", page["next_cursor"], "--json").stdout
    )
    assert [e["id"] for e in rest["entries"]] == sent[3:]
    assert rest["next_cursor"] is None

    table = kit("task", "ls", "--queue", "default", "--limit", "3")
    assert table.returncode == 0 and sent[0] in table.stdout and "tests.count" in table.stdout
    assert "3 task(s) shown; next page: --cursor" in table.stdout


@pytest.mark.e2e
def test_delete_of_a_pending_task_keeps_it_from_running_and_stats_drop(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.state_tasks import IMPORTS, blocker, release
    from tests.support.tasks import count

    start_worker(concurrency=1, env={"KIT_IMPORTS": IMPORTS})
    blocker.delay("cli-blocker")  # holds the only process until released
    eventually(lambda: redis.llen("test:starts:cli-blocker") == 1, 30)
    victim, survivor = count.delay("cli-victim"), count.delay("cli-survivor")
    assert _counted()["pending"] == 2
    done = kit("task", "delete", victim.id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{victim.id}: deleted (was pending)"
    assert _stats()["pending"] == 1
    release("cli-blocker")
    assert survivor.get(timeout=30) == 1
    assert not redis.exists("test:count:cli-victim")


@pytest.mark.e2e
def test_delete_of_a_scheduled_task_keeps_it_from_running(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker(env=DURABLE)
    victim = count.apply_async(("cli-later",), countdown=3600)
    witness = count.apply_async(("cli-witness",), countdown=3600)
    assert _counted()["scheduled"] == 2
    assert (
        kit("task", "delete", victim.id).stdout.strip() == f"{victim.id}: deleted (was scheduled)"
    )
    assert _stats()["scheduled"] == 1
    for member in redis.zrange("kit:scheduled", 0, -1):  # the hour passes: all fall due
        redis.zadd("kit:scheduled", {member: 0}, xx=True)
    assert witness.get(timeout=30) == 1
    assert not redis.exists("test:count:cli-later")


def test_archive_then_requeue_a_pending_task(redis: Any) -> None:
    from tests.support.tasks import count

    queued = count.delay("cli-arch")
    assert (
        kit("task", "archive", queued.id).stdout.strip() == f"{queued.id}: archived (was pending)"
    )
    listed = json.loads(kit("task", "ls", "--state", "archived", "--json").stdout)["entries"]
    assert [e["id"] for e in listed] == [queued.id]
    assert "ArchivedByOperator" in listed[0]["error"]
    done = kit("task", "requeue", queued.id)
    assert done.stdout.strip() == f"{queued.id}: requeued (was archived)"
    assert sum(redis.llen(k) for k in queue_keys("default")) == 1


@pytest.mark.e2e
def test_run_a_scheduled_task_now(short_threshold: None, start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import count

    start_worker(env=DURABLE)
    later = count.apply_async(("cli-run",), countdown=3600)
    done = kit("task", "run", later.id)
    assert done.stdout.strip() == f"{later.id}: pending now (was scheduled)", done.stderr
    assert later.get(timeout=30) == 1


@pytest.mark.e2e
def test_run_a_task_a_worker_holds_for_its_eta(start_worker: Any, redis: Any) -> None:
    from project.ops.states import copy_id
    from tests.support.tasks import count

    start_worker()
    held = count.apply_async(("cli-eta",), countdown=30)  # under the threshold: held
    eventually(lambda: redis.hlen("unacked") == 1, 30)
    done = run_kit("task", "run", held.id)  # the default threshold, as the worker has
    assert done.returncode == 0, done.stderr
    assert f"revoked there; pending now as {copy_id(held.id)}" in done.stdout
    assert default_kit().app.AsyncResult(copy_id(held.id)).get(timeout=30) == 1


def test_purge_asks_for_yes_then_counts_what_it_removed(redis: Any) -> None:
    from tests.support.tasks import count

    for i in range(4):
        count.delay(f"cli-purge{i}")
    asked = kit("queue", "purge", "default")
    assert asked.returncode == 2 and "add --yes" in asked.stderr
    assert sum(redis.llen(k) for k in queue_keys("default")) == 4
    done = kit("queue", "purge", "default", "--yes")
    assert done.stdout.strip() == "purged 4 pending task(s) from queue default"
    assert sum(redis.llen(k) for k in queue_keys("default")) == 0
    assert (
        "purged 0 archived"
        in kit("queue", "purge", "default", "--state", "archived", "--yes").stdout
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["task", "delete", "nope"], 1, "no task 'nope' is known"),
        (["task", "archive", "nope"], 1, "no task 'nope' is known"),
        (["task", "requeue", "nope"], 1, "no task 'nope' is known"),
        (["task", "run", "nope"], 1, "no task 'nope' is known"),
        (["task", "ls", "--queue", "urgent"], 2, "unknown queue 'urgent'"),
        (["task", "ls", "--state", "sleeping"], 2, "unknown state 'sleeping'"),
        (["task", "ls", "--cursor", "garbage"], 2, "unknown cursor 'garbage'"),
        (["queue", "purge", "urgent", "--yes"], 2, "unknown queue 'urgent'"),
        (["queue", "purge", "default", "--state", "active", "--yes"], 2, "unknown purge state"),
    ],
)
def test_expected_errors_are_one_line_with_their_exit_code(
    args: list[str], code: int, message: str
) -> None:
    done = kit(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_action_in_the_wrong_state_is_one_line_and_exit_one(redis: Any) -> None:
    from tests.support.tasks import count

    queued = count.delay("cli-wrong")
    done = kit("task", "run", queued.id)
    assert done.returncode == 1 and "it is pending" in done.stderr
    assert "Traceback" not in done.stderr
