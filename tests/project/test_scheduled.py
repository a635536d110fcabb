"""Durable delayed tasks: long delays wait in Redis, survive worker restarts, run exactly once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from project.broker.queues import queue_keys
from project.delay.scheduled import DurableSchedule, ScheduledCall, delay_of
from project.lifecycle.kit import default_kit
from tests.support.polling import eventually

THRESHOLD = "1"  # seconds: a 4-second delay takes the same path as a two-minute one
WORKER_ENV = {"KIT_DURABLE_DELAY_THRESHOLD": THRESHOLD, "KIT_FORWARDER_INTERVAL": "0.2"}


@pytest.fixture
def short_threshold() -> Iterator[None]:
    """This process enqueues with the same threshold the workers get."""
    kit = default_kit()
    delay = dataclasses.replace(kit.settings.delay, durable_delay_threshold=float(THRESHOLD))
    with kit.override(delay=delay):
        yield


def _schedule() -> DurableSchedule:
    return DurableSchedule(default_kit().redis)


def _queued(redis: Any) -> int:
    return sum(redis.llen(key) for key in queue_keys("default"))


def test_delay_is_read_from_countdown_or_eta() -> None:
    now = 1_000_000.0
    assert delay_of(countdown=90, now=now) == 90
    eta = datetime.fromtimestamp(now + 30, tz=timezone.utc)
    assert delay_of(eta=eta, now=now) == pytest.approx(30)
    assert delay_of(eta=eta.isoformat(), now=now) == pytest.approx(30)
    assert delay_of(countdown=-5, now=now) == 0
    assert delay_of(now=now) == 0


def test_long_delay_waits_in_redis_not_in_the_queue(short_threshold: None, redis: Any) -> None:
    from tests.support.tasks import count

    result = count.apply_async(("long",), countdown=30)
    (call,) = _schedule().upcoming()
    assert (call.task_id, call.task, call.args) == (result.id, "tests.count", ["long"])
    assert call.due == pytest.approx(time.time() + 30, abs=2)
    assert _queued(redis) == 0


@pytest.mark.parametrize("when", ["countdown", "eta"])
def test_a_long_delay_sent_by_name_waits_in_redis_too(
    short_threshold: None, redis: Any, when: str
) -> None:
    from project import app

    delay: dict[str, Any] = (
        {"countdown": 3600}
        if when == "countdown"
        else {"eta": datetime.now(timezone.utc) + timedelta(hours=1)}
    )
    result = app.send_task("tests.count", ("by-name",), **delay)
    (call,) = _schedule().upcoming()
    assert (call.task_id, call.task, call.args) == (result.id, "tests.count", ["by-name"])
    assert call.due == pytest.approx(time.time() + 3600, abs=5)
    assert _queued(redis) == 0


def test_short_delay_takes_celerys_usual_path(short_threshold: None, redis: Any) -> None:
    from tests.support.tasks import count

    count.apply_async(("short",), countdown=0.5)
    assert _schedule().count() == 0
    assert _queued(redis) == 1


def test_eta_beyond_the_threshold_is_durable_too(short_threshold: None) -> None:
    from tests.support.tasks import count

    count.apply_async(("eta",), eta=datetime.now(timezone.utc) + timedelta(minutes=2))
    assert _schedule().count() == 1


def test_a_claim_abandoned_by_a_dead_forwarder_returns_to_the_schedule(redis: Any) -> None:
    schedule = _schedule()
    call = ScheduledCall("t-1", "tests.count", ["x"], {}, {}, due=time.time() - 1)
    schedule.add(call)
    assert [c.task_id for c in schedule.claim_due()] == ["t-1"]
    assert schedule.claim_due() == []  # claimed once only
    assert schedule.recover_stale_claims(timeout=0) == 1
    assert [c.task_id for c in schedule.claim_due()] == ["t-1"]


@pytest.mark.e2e
def test_delayed_task_runs_once_across_a_worker_restart(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    first = start_worker(env=WORKER_ENV)
    result = count.apply_async(("restart",), countdown=4)
    first.stop()  # the worker goes away while the task waits
    start_worker(env=WORKER_ENV)
    assert result.get(timeout=60) == 1
    eventually(lambda: _schedule().count() == 0, 10)
    assert redis.get("test:count:restart") == "1"


@pytest.mark.e2e
def test_two_workers_forward_each_delayed_task_exactly_once(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker(env=WORKER_ENV)
    start_worker(env=WORKER_ENV)
    results = [count.apply_async((f"pair-{i}",), countdown=2) for i in range(20)]
    assert _schedule().count() == 20
    for result in results:
        assert result.get(timeout=60) == 1
    eventually(lambda: _schedule().count() == 0, 10)
    assert all(redis.get(f"test:count:pair-{i}") == "1" for i in range(20))


@pytest.mark.e2e
def test_a_retry_with_a_long_backoff_is_durable(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import retry_later

    start_worker(env=WORKER_ENV)
    result = retry_later.delay("durable-retry", 3.0)
    eventually(lambda: _schedule().count() == 1, 30)  # the retry waits in Redis
    assert _queued(redis) == 0
    assert result.get(timeout=60) == "done"
    assert redis.llen("test:attempts:durable-retry") == 2


def test_a_delayed_task_refused_when_due_is_archived_not_retried_forever(redis: Any) -> None:
    from project import app
    from project.delay.forwarder import Forwarder
    from project.retries.archive import Reason

    # Valid when scheduled, perhaps; refused by today's checks (a path outside the root).
    bad = {"source_path": "../etc/passwd", "dest_path": "o.png", "width": 5}
    _schedule().add(ScheduledCall("t-bad", "image:resize", [], bad, {}, due=time.time() - 1))
    forwarder = Forwarder(app, interval=0.2)
    try:
        assert forwarder.run_once() == 0
        assert forwarder.run_once() == 0  # nothing left to try again
    finally:
        forwarder.stop()
    record = default_kit().archive().get("t-bad")
    assert record is not None and record.reason == Reason.PERMANENT
    assert record.error_type == "ValidationError" and "'..'" in record.error
    assert _schedule().count() == 0 and _queued(redis) == 0
