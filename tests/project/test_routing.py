"""Routing: each task has a default queue; a caller may override it per call."""

from __future__ import annotations

from typing import Any

import pytest


def _queued(redis: Any) -> dict[str, int]:
    """Messages waiting per queue (kombu keeps a list per queue and priority; the kit's own
    lists, such as the queues' bells, hold no messages)."""
    counts: dict[str, int] = {}
    for key in redis.keys("*"):
        if key.startswith(("_kombu", "kit:")) or redis.type(key) != "list":
            continue
        queue = key.split("\x06\x16")[0]
        counts[queue] = counts.get(queue, 0) + redis.llen(key)
    return counts


def test_task_without_a_declared_queue_goes_to_default(redis: Any) -> None:
    from tests.support.tasks import noop

    noop.delay()
    assert _queued(redis) == {"default": 1}


def test_task_goes_to_the_queue_it_declares(redis: Any) -> None:
    from tests.support.tasks import on_low

    on_low.delay()
    assert _queued(redis) == {"low": 1}


def test_caller_overrides_the_declared_queue(redis: Any) -> None:
    from tests.support.tasks import on_low

    on_low.apply_async(queue="critical")
    assert _queued(redis) == {"critical": 1}


def test_send_task_by_name_uses_the_declared_queue(redis: Any) -> None:
    from project import app

    app.send_task("tests.on_low")
    assert _queued(redis) == {"low": 1}


@pytest.mark.e2e
def test_worker_serves_a_task_routed_to_low(celery_worker: Any) -> None:
    from tests.support.tasks import on_low

    assert on_low.delay().get(timeout=10) == "low"
