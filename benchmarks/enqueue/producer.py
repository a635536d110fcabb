"""The enqueue benchmarks' producer side: one function per variant, run in a fresh
subprocess by :mod:`benchmarks.core.producer`, each returning the seconds it timed.

A loop variant first makes :data:`WARMUP` untimed enqueues, which open the connections (and
Celery's result-backend subscription) before the clock starts, so the rate is the steady-state
cost of one enqueue, not of the first connect; a bulk variant first publishes one untimed batch
of :data:`WARMUP`. Arguments are distinct per task (``bench.item(n)``), so no unique enqueue is
a duplicate. Stock Celery's loop (:func:`plain_apply_async`) is the kit's yardstick: a
``Celery()`` app on the same Redis, without and with its Redis result backend (the kit's app has
one, and with it each ``apply_async`` subscribes to the task's result channel). The kit,
Dramatiq and RQ are imported inside the functions: the parent process imports this module for
:data:`WARMUP` only.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks.core.bodies import QUEUE

__all__ = [
    "WARMUP",
    "apply_async",
    "dramatiq_send",
    "enqueue_many",
    "enqueue_many_unique",
    "enqueue_unique",
    "plain_apply_async",
    "plain_apply_async_results",
    "rq_enqueue",
]

WARMUP = 20  # untimed enqueues before the clock starts


def _timed_loop(enqueue: Callable[[int], object], count: int) -> float:
    """Seconds for ``count`` enqueues with distinct arguments, after :data:`WARMUP` untimed."""
    for n in range(-WARMUP, 0):
        enqueue(n)
    began = time.perf_counter()
    for n in range(count):
        enqueue(n)
    return time.perf_counter() - began


def _timed_batch(unique: bool, count: int) -> float:
    """Seconds for one ``enqueue_many`` of ``count`` tasks, after an untimed one of
    :data:`WARMUP` (the same distinct arguments as :func:`_timed_loop`)."""
    from benchmarks.enqueue.kit_tasks import item
    from project.enqueue.bulk import enqueue_many as publish_many

    def publish(start: int, size: int) -> None:
        outcome = publish_many((item.s(n) for n in range(start, start + size)), unique=unique)
        if outcome.published != size:
            raise RuntimeError(f"published {outcome.published} of {size}")

    publish(-WARMUP, WARMUP)
    began = time.perf_counter()
    publish(0, count)
    return time.perf_counter() - began


def apply_async(count: int) -> float:
    from benchmarks.enqueue.kit_tasks import item

    # No producer= : Celery's producer pool hands the same connection back on every call,
    # which is what a web app's ``task.delay()`` gets.
    return _timed_loop(lambda n: item.apply_async((n,)), count)


def _plain_loop(count: int, *, results: bool) -> float:
    from benchmarks.throughput.plain_app import create_app

    url = os.environ["REDIS_URL"]
    plain = create_app(url, url if results else None)

    def item(n: int) -> None:
        """Never runs: no worker."""

    task = plain.task(name="bench.item", shared=False)(item)
    return _timed_loop(lambda n: task.apply_async((n,)), count)


def plain_apply_async(count: int) -> float:
    """Stock Celery, no result backend (its default)."""
    return _plain_loop(count, results=False)


def plain_apply_async_results(count: int) -> float:
    """Stock Celery with its Redis result backend on the same Redis."""
    return _plain_loop(count, results=True)


def enqueue_unique(count: int) -> float:
    from benchmarks.enqueue.kit_tasks import item
    from project import enqueue_unique as publish_unique

    return _timed_loop(lambda n: publish_unique(item.s(n)), count)


def enqueue_many(count: int) -> float:
    return _timed_batch(False, count)


def enqueue_many_unique(count: int) -> float:
    return _timed_batch(True, count)


def dramatiq_send(count: int) -> float:
    dramatiq: Any = importlib.import_module("dramatiq")
    brokers: Any = importlib.import_module("dramatiq.brokers.redis")
    dramatiq.set_broker(brokers.RedisBroker(url=os.environ["REDIS_URL"]))

    def item(n: int) -> None:
        """Never runs: no Dramatiq worker."""

    actor = dramatiq.actor(item, actor_name="bench_item", queue_name=QUEUE)
    return _timed_loop(actor.send, count)


def rq_item(n: int) -> None:
    """RQ's job function (referred to by its dotted path; never runs: no RQ worker)."""


def rq_enqueue(count: int) -> float:
    rq: Any = importlib.import_module("rq")
    redis: Any = importlib.import_module("redis")
    queue = rq.Queue(QUEUE, connection=redis.Redis.from_url(os.environ["REDIS_URL"]))
    return _timed_loop(lambda n: queue.enqueue(f"{__name__}.rq_item", n), count)
