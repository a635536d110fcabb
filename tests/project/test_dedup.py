"""De-duplication: one message for the same work, locks freed by policy and only by their
holder, caller-chosen ids, and single-flight execution that survives a killed worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from project import DuplicateTaskError, TaskIdConflictError
from project.coordination.locks import RedisLock
from project.enqueue.dedup import (
    ReleasePolicy,
    enqueue_unique,
    enqueue_with_id,
    release_finished,
    unique_key,
)
from project.lifecycle.kit import default_kit
from project.lifecycle.middleware import Middleware, Pipeline
from tests.support.polling import eventually
from tests.support.workers import ROOT


def _waiting(redis: Any, queue: str = "default") -> int:
    return sum(redis.llen(k) for k in redis.keys(f"{queue}*") if redis.type(k) == "list")


def _unique_holder(redis: Any, key: str) -> str | None:
    value: str | None = redis.get(f"kit:unique:{key}")
    return value


def test_unique_key_ignores_keyword_order_but_not_values() -> None:
    first = unique_key("tests.add", "default", [], {"x": 1, "y": 2})
    assert first == unique_key("tests.add", "default", [], {"y": 2, "x": 1})
    assert first != unique_key("tests.add", "default", [], {"x": 2, "y": 1})
    assert first != unique_key("tests.add", "low", [], {"x": 1, "y": 2})


@pytest.mark.e2e
def test_two_hundred_racing_producers_publish_exactly_one_message(redis: Any) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.unique_producer", "50"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:  # the starting gun: every thread of every process at once
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    outcomes = [o for out in outputs for o in json.loads(out)]

    published = [o["published"] for o in outcomes if "published" in o]
    holders = [o["holder"] for o in outcomes if "holder" in o]
    assert len(outcomes) == 200
    assert len(published) == 1
    assert holders == published * 199
    assert _waiting(redis) == 1


def test_duplicate_returns_the_holders_result_when_asked(redis: Any) -> None:
    from tests.support.tasks import add

    first = add.apply_unique((1, 2))
    again = add.apply_unique((1, 2), on_duplicate="return")
    assert again.id == first.id
    with pytest.raises(DuplicateTaskError) as caught:
        add.apply_unique((1, 2))
    assert caught.value.holder_id == first.id
    assert _waiting(redis) == 1


def test_caller_key_makes_different_arguments_the_same_work(redis: Any) -> None:
    from tests.support.tasks import add

    first = enqueue_unique(add.s(1, 2), key="email:user:123")
    with pytest.raises(DuplicateTaskError):
        enqueue_unique(add.s(3, 4), key="email:user:123")
    assert _unique_holder(redis, "email:user:123") == first.id


def test_failed_publish_frees_the_lock(redis: Any) -> None:
    from tests.support.tasks import add

    with pytest.raises((TypeError, ValueError)):
        enqueue_unique(add.s(1, 2).set(countdown="soon"), key="doomed")
    assert _unique_holder(redis, "doomed") is None
    assert _waiting(redis) == 0


def test_lock_is_released_after_success(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import add

    result = enqueue_unique(add.s(2, 2), key="after-success")
    assert result.get(timeout=30) == 4
    eventually(lambda: _unique_holder(redis, "after-success") is None, 10)
    assert enqueue_unique(add.s(2, 2), key="after-success").get(timeout=30) == 4


class _HoldSuccess(Middleware):
    """Holds the worker in ``on_success`` (after the result is stored) until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def on_success(self, task: Any, retval: Any) -> None:
        self.release.wait(30)


def test_success_is_never_visible_while_the_unique_lock_is_held(redis: Any) -> None:
    """A caller that sees SUCCESS enqueues the same unique work again: it is not refused, even
    while the worker is still in its success handling."""
    from celery.contrib.testing.worker import start_worker

    from project import app
    from tests.support.tasks import add

    kit = default_kit()
    hold = _HoldSuccess()
    original = kit.pipeline
    kit.pipeline = Pipeline([hold, *original.middleware])
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            first = enqueue_unique(add.s(1, 1), key="visible")
            assert first.get(timeout=30) == 2  # stored; the worker is held in on_success
            second = enqueue_unique(add.s(1, 1), key="visible")
            hold.release.set()
            assert second.get(timeout=30) == 2
    finally:
        hold.release.set()
        kit.pipeline = original


def test_lock_is_held_while_the_task_waits_to_retry(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import retry_later

    result = enqueue_unique(retry_later.s("waits", 2.0), key="between-retries")
    eventually(lambda: redis.llen("test:attempts:waits") == 1, 10)
    assert not result.ready()
    assert _unique_holder(redis, "between-retries") == result.id
    with pytest.raises(DuplicateTaskError):
        enqueue_unique(retry_later.s("waits", 2.0), key="between-retries")
    assert result.get(timeout=30) == "done"
    eventually(lambda: _unique_holder(redis, "between-retries") is None, 10)


@pytest.mark.parametrize(
    ("policy", "held_after_archive"),
    [(ReleasePolicy.ON_SUCCESS, True), (ReleasePolicy.ON_SUCCESS_OR_ARCHIVE, False)],
)
def test_archive_frees_the_lock_only_under_the_archive_policy(
    celery_worker: Any, redis: Any, policy: ReleasePolicy, held_after_archive: bool
) -> None:
    from tests.support.tasks import permanent

    key = f"archived-{policy.value}"
    result = enqueue_unique(permanent.s(key), key=key, policy=policy)
    eventually(lambda: redis.exists(f"kit:archived:{result.id}"), 30)
    eventually(lambda: (_unique_holder(redis, key) == result.id) == held_after_archive, 10)
    assert (_unique_holder(redis, key) == result.id) is held_after_archive


def test_until_ttl_policy_holds_past_success_then_expires(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import add

    first = enqueue_unique(add.s(5, 5), key="once-per-window", ttl=1.5, policy="ttl")
    assert first.get(timeout=30) == 10
    with pytest.raises(DuplicateTaskError):
        enqueue_unique(add.s(5, 5), key="once-per-window", ttl=1.5, policy="ttl")
    eventually(lambda: _unique_holder(redis, "once-per-window") is None, 5)
    assert enqueue_unique(add.s(5, 5), key="once-per-window", policy="ttl").get(timeout=30) == 10


def test_a_late_finisher_never_frees_the_new_holders_lock(redis: Any) -> None:

    client = default_kit().redis
    late = RedisLock(client, "kit:unique:handover", "task-a", ttl=0.2)
    assert late.acquire()
    eventually(lambda: late.holder() is None, 5)  # task A overran its lock's TTL
    new = RedisLock(client, "kit:unique:handover", "task-b", ttl=30)
    assert new.acquire()

    release_finished(client, {"kit_unique_key": "handover"}, "task-a", "success")
    assert late.release() is False
    assert late.renew() is False
    assert new.holder() == "task-b"


def test_caller_chosen_id_conflicts_until_its_task_finished(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import add, permanent, retry_later

    waiting = enqueue_with_id(retry_later.s("by-id", 1.0), "order-42")
    with pytest.raises(TaskIdConflictError):
        enqueue_with_id(add.s(1, 1), "order-42")
    assert waiting.get(timeout=30) == "done"
    eventually(lambda: not redis.exists("kit:taskid:order-42"), 10)
    assert enqueue_with_id(add.s(1, 1), "order-42").get(timeout=30) == 2
    eventually(lambda: not redis.exists("kit:taskid:order-42"), 10)

    failed = enqueue_with_id(permanent.s("by-id"), "order-43")
    eventually(lambda: redis.exists(f"kit:archived:{failed.id}"), 30)
    eventually(lambda: not redis.exists("kit:taskid:order-43"), 10)


@pytest.mark.e2e
def test_single_flight_instances_never_overlap(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import exclusive

    start_worker(concurrency=2)
    results = [exclusive.delay("overlap", 1.0) for _ in range(2)]
    assert len({r.get(timeout=60) for r in results}) == 2
    runs = [line.split() for line in redis.lrange("test:runs:overlap", 0, -1)]
    assert [r[0] for r in runs] == ["start", "end", "start", "end"]
    assert runs[0][2] == runs[1][2] and float(runs[1][1]) <= float(runs[2][1])


@pytest.mark.e2e
def test_single_flight_can_skip_a_busy_key(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import exclusive_skip

    start_worker(concurrency=2)
    first = exclusive_skip.delay("skip", 1.5)
    eventually(lambda: redis.llen("test:runs:skip") == 1, 30)
    second = exclusive_skip.delay("skip", 1.5)
    assert first.get(timeout=30) == first.id
    eventually(lambda: _waiting(redis) == 0 and redis.hlen("unacked") == 0, 10)
    assert redis.lrange("test:runs:skip", 0, -1) == [first.id]
    assert second.state == "SKIPPED"
    assert second.info == {"running": first.id}


@pytest.mark.e2e
def test_killed_worker_blocks_a_single_flight_key_no_longer_than_its_ttl(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import exclusive

    worker = start_worker(concurrency=1)
    exclusive.delay("killed", 60)
    eventually(lambda: redis.llen("test:runs:killed") == 1, 30)
    (lock_key,) = redis.keys("kit:running:*")
    worker.kill()
    killed_at = time.monotonic()
    eventually(lambda: not redis.exists(lock_key), 10)
    assert time.monotonic() - killed_at <= 2.0 + 0.5  # the task's single_flight_ttl, plus slack
