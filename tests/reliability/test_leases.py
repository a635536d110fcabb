"""Worker killed mid-task: its task comes back within one visibility timeout; a live worker's
long task or held ETA task is never delivered twice, because live workers renew their leases."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from project.lifecycle.kit import default_kit
from tests.support.polling import eventually

SHORT_LEASE = {"KIT_VISIBILITY_TIMEOUT": "3"}  # seconds; the kit's default is 60


def _starts(redis: Any, key: str) -> int:
    return int(redis.llen(f"test:starts:{key}"))


def _finishes(redis: Any, key: str) -> int:
    return int(redis.llen(f"test:finishes:{key}"))


@pytest.mark.e2e
@pytest.mark.parametrize("victim", ["whole worker", "pool child"])
def test_a_killed_workers_task_runs_again_on_another_worker(
    start_worker: Any, redis: Any, victim: str
) -> None:
    from tests.support.tasks import slow_mark

    doomed = start_worker(concurrency=1, env=SHORT_LEASE)
    result = slow_mark.delay("killed", 4)
    eventually(lambda: _starts(redis, "killed") == 1, 30)
    if victim == "whole worker":
        doomed.kill()  # SIGKILL to the worker and its pool: no chance to hand anything back
    else:
        import psutil

        (child,) = psutil.Process(doomed.process.pid).children()
        child.send_signal(signal.SIGKILL)
    died_at = time.monotonic()
    start_worker(concurrency=1, env=SHORT_LEASE)
    assert result.get(timeout=60) == "killed"
    recovered_in = time.monotonic() - died_at
    assert _finishes(redis, "killed") == 1
    # One lease (3 s) plus one restore sweep (5 s) plus the task itself (4 s), with slack.
    assert recovered_in < 3 + 5 + 4 + 10, recovered_in


@pytest.mark.e2e
def test_a_live_workers_long_task_is_never_delivered_twice(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import slow_mark

    start_worker(concurrency=1, env=SHORT_LEASE)
    start_worker(concurrency=1, env=SHORT_LEASE)  # idle, sweeping for expired leases
    # The task runs for several visibility timeouts and restore sweeps.
    assert slow_mark.delay("long", 14).get(timeout=90) == "long"
    assert (_starts(redis, "long"), _finishes(redis, "long")) == (1, 1)


@pytest.mark.e2e
def test_a_held_eta_task_is_never_delivered_twice(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import slow_mark

    start_worker(concurrency=1, env=SHORT_LEASE)
    start_worker(concurrency=1, env=SHORT_LEASE)
    # Below the durable-delay threshold: a worker holds it in memory for 12 s.
    result = slow_mark.apply_async(("eta", 0.1), countdown=12)
    assert result.get(timeout=90) == "eta"
    time.sleep(6)  # one more sweep: a duplicate would show up now
    assert (_starts(redis, "eta"), _finishes(redis, "eta")) == (1, 1)


@pytest.mark.e2e
def test_a_task_that_kills_its_process_is_retried_then_archived_not_requeued_forever(
    start_worker: Any, redis: Any
) -> None:
    from project.retries.archive import Reason
    from tests.support.tasks import add, crash

    start_worker(concurrency=1)
    result = crash.delay("pill")
    archive = default_kit().archive()
    record = eventually(lambda: archive.get(result.id), 90)
    assert record.error_type == "WorkerLostError", record
    assert record.reason in (Reason.RETRIES_EXHAUSTED, Reason.UNEXPECTED), record
    assert redis.llen("test:starts:pill") == 3  # the first run and max_retries=2 retries
    assert add.delay(1, 1).get(timeout=30) == 2  # the pool replaced each killed process
    assert sum(redis.llen(k) for k in redis.keys("default*")) == 0  # nothing requeued


@pytest.mark.e2e
def test_a_retried_attempt_whose_acknowledgement_was_lost_does_not_run_again(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import retry_keeping_record

    worker = start_worker(concurrency=1, env=SHORT_LEASE)
    # The first attempt fails and retries in 20 s (held by the worker, not yet run).
    result = retry_keeping_record.delay("lost-ack", 20)
    eventually(lambda: result.state == "RETRY", 30)
    tag = eventually(lambda: redis.get("test:tag:lost-ack"), 30)
    eventually(lambda: not redis.hexists("unacked", tag), 30)  # acknowledged
    # Its acknowledgement lost, as when the connection drops before it reaches Redis: the
    # message is recorded again, delivered longer ago than the visibility timeout.
    redis.hset("unacked", tag, redis.get("test:record:lost-ack"))
    redis.zadd("unacked_index", {tag: time.time() - 60})

    eventually(lambda: "not run: redelivered attempt 1" in worker.output, 30)
    assert redis.lrange("test:attempts:lost-ack", 0, -1) == ["0"]  # the copy did not run
    assert result.get(timeout=60) == "done"  # the retry still does
    assert redis.lrange("test:attempts:lost-ack", 0, -1) == ["0", "1"]
    eventually(lambda: redis.hlen("unacked") == 0, 30)  # the copy was acknowledged


@pytest.mark.e2e
def test_a_retried_tasks_next_attempt_runs_again_when_its_worker_dies(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import retry_keeping_record

    doomed = start_worker(concurrency=1, env=SHORT_LEASE)
    result = retry_keeping_record.delay("next-attempt", 0.2, 4)  # the second attempt runs 4 s
    eventually(lambda: redis.llen("test:attempts:next-attempt") == 2, 30)
    doomed.kill()  # during the second attempt: its message is redelivered while RETRY is stored
    start_worker(concurrency=1, env=SHORT_LEASE)
    assert result.get(timeout=60) == "done"
    assert redis.lrange("test:attempts:next-attempt", 0, -1) == ["0", "1", "1"]
    assert redis.lrange("test:finishes:next-attempt", 0, -1) == ["1"]
