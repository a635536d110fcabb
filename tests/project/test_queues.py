"""Queues like Asynq's: weighted shares under saturation, strict priority, priorities inside."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from project.broker.queues import StrictCycle, WeightedCycle

WEIGHTS = {"critical": 6, "default": 3, "low": 1}


def _preload(per_queue: int, queues: tuple[str, ...] = ("critical", "default", "low")) -> None:
    from tests.support.tasks import record_queue

    with record_queue.app.producer_or_acquire() as producer:
        for queue in queues:
            for _ in range(per_queue):
                record_queue.apply_async(queue=queue, producer=producer)


def _served(redis: Any, count: int, timeout: float = 120.0) -> list[str]:
    """Block until ``count`` tasks have been served; return the order they were served in."""
    import time

    deadline = time.monotonic() + timeout
    while redis.llen("test:served") < count:
        assert time.monotonic() < deadline, f"only {redis.llen('test:served')} served"
        time.sleep(0.05)
    return list(redis.lrange("test:served", 0, count - 1))


def test_weighted_cycle_deals_each_queue_first_in_proportion_to_its_weight() -> None:
    cycle = WeightedCycle(["low", "default", "critical"], rng=random.Random(7))
    cycle.set_weights(WEIGHTS)
    firsts = Counter(cycle.consume(3)[0] for _ in range(1000))
    assert firsts == {"critical": 600, "default": 300, "low": 100}


def test_weighted_cycle_serves_low_within_every_deck_of_ten() -> None:
    cycle = WeightedCycle(["low", "default", "critical"], rng=random.Random(3))
    cycle.set_weights(WEIGHTS)
    for _ in range(50):
        deck = [cycle.consume(3)[0] for _ in range(10)]
        assert "low" in deck


def test_weighted_cycle_always_lists_every_queue_as_a_fallback() -> None:
    cycle = WeightedCycle(["low", "default", "critical"])
    cycle.set_weights(WEIGHTS)
    for _ in range(30):
        assert sorted(cycle.consume(3)) == ["critical", "default", "low"]


def test_strict_cycle_orders_queues_by_descending_weight() -> None:
    cycle = StrictCycle(["low", "critical", "default"])
    cycle.set_weights(WEIGHTS)
    assert cycle.consume(3) == ["critical", "default", "low"]


@pytest.mark.e2e
def test_saturated_worker_serves_queues_six_three_one(start_worker: Any, redis: Any) -> None:
    _preload(1000)
    start_worker(concurrency=1, extra_args=["--prefetch-multiplier=1"])
    shares = Counter(queue for queue in _served(redis, 600))
    assert abs(shares["critical"] / 600 - 0.60) <= 0.05, shares
    assert abs(shares["default"] / 600 - 0.30) <= 0.05, shares
    assert abs(shares["low"] / 600 - 0.10) <= 0.05, shares


@pytest.mark.e2e
def test_strict_priority_serves_every_critical_task_before_any_default(
    start_worker: Any, redis: Any
) -> None:
    _preload(200)
    start_worker(
        concurrency=1, extra_args=["--prefetch-multiplier=1"], env={"KIT_STRICT_PRIORITY": "1"}
    )
    served = _served(redis, 600)
    assert served == ["critical"] * 200 + ["default"] * 200 + ["low"] * 200


@pytest.mark.e2e
def test_priority_orders_tasks_within_a_queue(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import record_queue

    for priority in (9, 5, 0, 7, 3):
        record_queue.apply_async(args=[f"p{priority}"], queue="default", priority=priority)
    start_worker(concurrency=1, extra_args=["--prefetch-multiplier=1"])
    assert _served(redis, 5) == [f"default:p{p}" for p in (0, 3, 5, 7, 9)]


@pytest.mark.e2e
def test_queue_order_comes_before_task_priority(start_worker: Any, redis: Any) -> None:
    """The kit's rule: the queue is chosen first, priority orders within it (see transport)."""
    from tests.support.tasks import record_queue

    record_queue.apply_async(args=["urgent"], queue="low", priority=0)
    record_queue.apply_async(args=["relaxed"], queue="critical", priority=9)
    start_worker(
        concurrency=1, extra_args=["--prefetch-multiplier=1"], env={"KIT_STRICT_PRIORITY": "1"}
    )
    assert _served(redis, 2) == ["critical:relaxed", "low:urgent"]


@pytest.mark.e2e
def test_task_without_priority_gets_the_configured_default(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import record_queue

    record_queue.apply_async(args=["later"], queue="default", priority=6)
    record_queue.apply_async(args=["none"], queue="default")
    record_queue.apply_async(args=["urgent"], queue="default", priority=4)
    # With no priority a task sits at KIT_DEFAULT_PRIORITY (5): after 4, before 6.
    start_worker(concurrency=1, extra_args=["--prefetch-multiplier=1"])
    assert _served(redis, 3) == ["default:urgent", "default:none", "default:later"]


def test_chord_callback_gets_the_default_priority_too(celery_worker: Any) -> None:
    """Celery sends a chord's callback with no priority; kombu would file it as 0 (urgent)."""
    from celery import chord

    from tests.support.tasks import my_priority, noop

    result = chord([noop.s(), noop.s()], my_priority.s()).apply_async()
    assert result.get(timeout=30) == 5
