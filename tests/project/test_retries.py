"""Retries like Asynq's: transient errors back off and retry, then archive; permanent ones don't."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from project import Archive
from project.lifecycle.kit import default_kit
from project.retries.archive import ArchivedTask, Reason
from tests.support.polling import eventually

BASE = 0.2  # KIT_RETRY_BACKOFF in tests/conftest.py


def _archive() -> Archive:
    return default_kit().archive()


def _archived(task_id: str, timeout: float = 30.0) -> ArchivedTask:
    return eventually(lambda: _archive().get(task_id), timeout)


def _attempt_times(redis: Any, key: str) -> list[float]:
    return [float(t) for t in redis.lrange(f"test:attempts:{key}", 0, -1)]


def _retry_etas(redis: Any, key: str) -> list[float]:
    """When each retry of ``key`` was due (the first attempt has no ETA)."""
    return [float(t) for t in redis.lrange(f"test:etas:{key}", 0, -1) if t != "none"]


def test_transient_error_is_retried_with_growing_delays_then_archived(
    celery_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import flaky

    result = flaky.apply_async(kwargs={"key": "growing", "failures": 99})
    record = _archived(result.id)

    times = _attempt_times(redis, "growing")
    assert len(times) == flaky.max_retries + 1 == record.attempts == 4
    # What the kit scheduled after each failed attempt (its retry's ETA, from the attempt's
    # start: the countdown plus the few milliseconds the attempt took), not when the retry
    # happened to run, which adds the machine's delivery latency to every gap.
    etas = _retry_etas(redis, "growing")
    delays = [due - began for began, due in zip(times, etas, strict=False)]
    for retry, delay in enumerate(delays):
        nominal = BASE * 2**retry  # "equal jitter": drawn from [nominal / 2, nominal]
        assert nominal * 0.5 - 0.02 <= delay <= nominal + 0.25, (retry, delays)
    for earlier, later in pairwise(delays):
        assert later >= earlier - 0.05, delays  # never shrinking, up to the attempt's own time
    # Each retry runs once it is due, not before.
    assert all(ran >= due - 0.05 for ran, due in zip(times[1:], etas, strict=True)), (times, etas)
    assert record.reason == Reason.RETRIES_EXHAUSTED
    assert record.error_type == "TransientError"
    assert record.task == "tests.flaky"
    assert record.queue == "default"
    assert record.kwargs == {"key": "growing", "failures": 99}
    assert "TransientError" in (record.traceback or "")


def test_transient_error_that_clears_succeeds_without_archiving(
    celery_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import flaky

    result = flaky.apply_async(kwargs={"key": "clears", "failures": 2})
    assert result.get(timeout=30) == 2
    assert len(_attempt_times(redis, "clears")) == 3
    assert _archive().get(result.id) is None


def test_connection_error_counts_as_transient(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import connection_refused

    result = connection_refused.apply_async(kwargs={"key": "refused"})
    record = _archived(result.id)
    assert record.reason == Reason.RETRIES_EXHAUSTED
    assert record.attempts == 3 == len(_attempt_times(redis, "refused"))
    assert record.error_type == "ConnectionRefusedError"


def test_permanent_error_is_archived_after_one_attempt(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import permanent

    result = permanent.apply_async(kwargs={"key": "perm"}, priority=2)
    record = _archived(result.id)
    assert record.reason == Reason.PERMANENT
    assert record.attempts == 1
    assert record.error == "payload names a file that does not exist"
    assert record.priority == 2
    assert result.get(propagate=False, timeout=10) is not None
    assert result.state == "FAILURE"
    assert len(_attempt_times(redis, "perm")) == 1


def test_unclassified_error_fails_fast_and_is_archived(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import buggy

    result = buggy.apply_async(kwargs={"key": "bug"})
    record = _archived(result.id)
    assert record.reason == Reason.UNEXPECTED
    assert record.attempts == 1
    assert "KeyError: 'width'" in (record.traceback or "")
    assert len(_attempt_times(redis, "bug")) == 1


@pytest.mark.e2e
def test_pickled_message_is_refused_and_archived_and_the_worker_keeps_serving(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import mark

    pickled = mark.apply_async(args=["pickled"], serializer="pickle")
    start_worker()
    assert mark.apply_async(args=["json"]).get(timeout=30) is None

    record = _archived(pickled.id)
    assert redis.get("test:mark:json") == "1"
    assert redis.get("test:mark:pickled") is None
    assert record.reason == Reason.REFUSED
    assert record.content_type == "application/x-python-serialize"
    assert record.task == "tests.mark"
    assert record.body  # the raw body is kept, never unpickled


@pytest.mark.e2e
def test_message_for_an_unknown_task_is_archived_with_its_arguments(start_worker: Any) -> None:
    from project import app

    start_worker()
    sent = app.send_task("tests.not_installed", args=[1, "two"], kwargs={"three": 3})
    record = _archived(sent.id)
    assert record.reason == Reason.REFUSED
    assert (record.task, record.args, record.kwargs) == (
        "tests.not_installed",
        [1, "two"],
        {"three": 3},
    )
