"""``python -m benchmarks.enqueue.producer <variant> <count>``: one producer loop (or one bulk
``enqueue_many`` call), timed, as JSON.

Why a subprocess per run: the kit reads REDIS_URL and the OTEL_* variables once, at import, and
``setup_telemetry`` installs process-wide providers and signal handlers. A fresh interpreter per
variant gets exactly the configuration its environment describes, and nothing left over from
the previous variant. The parent (:mod:`benchmarks.enqueue.scenario`,
:mod:`benchmarks.telemetry.scenario`) sets the environment and reads the one line of JSON
printed on stdout.

Every variant calls ``setup_telemetry("producer")`` first, as a web app does at start-up; with
OTEL_SDK_DISABLED=true that is a no-op. A few untimed warm-up enqueues open the connections
(and Celery's result-backend subscription) before the clock starts, so the rate is the
steady-state cost of one enqueue, not of the first connect. Telemetry is shut down (spans
flushed to the receiver) after the clock stops.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["VARIANTS", "main"]

WARMUP = 20  # untimed enqueues before the clock starts
QUEUE = "bench"  # Dramatiq's and RQ's queue name


def rq_item(n: int) -> None:
    """RQ's job function (referred to by its dotted path; never runs: no RQ worker)."""


Enqueue = Callable[[int], object]


def _celery_apply_async() -> Enqueue:
    from benchmarks.throughput.kit_tasks import item

    def enqueue(n: int) -> object:
        # No producer= : Celery's producer pool hands the same connection back on every call,
        # which is what a web app's ``task.delay()`` gets.
        return item.apply_async((n,))

    return enqueue


def _kit_enqueue_unique() -> Enqueue:
    from benchmarks.throughput.kit_tasks import item
    from project.enqueue.dedup import enqueue_unique

    def enqueue(n: int) -> object:
        return enqueue_unique(item.s(n))

    return enqueue


def _dramatiq_send() -> Enqueue:
    dramatiq: Any = importlib.import_module("dramatiq")
    brokers: Any = importlib.import_module("dramatiq.brokers.redis")
    dramatiq.set_broker(brokers.RedisBroker(url=os.environ["REDIS_URL"]))

    def item(n: int) -> None:
        """Never runs: no Dramatiq worker."""

    actor = dramatiq.actor(item, actor_name="bench_item", queue_name=QUEUE)

    def enqueue(n: int) -> object:
        return actor.send(n)

    return enqueue


def _rq_enqueue() -> Enqueue:
    rq: Any = importlib.import_module("rq")
    redis: Any = importlib.import_module("redis")
    queue = rq.Queue(QUEUE, connection=redis.Redis.from_url(os.environ["REDIS_URL"]))

    def enqueue(n: int) -> object:
        return queue.enqueue("benchmarks.enqueue.producer.rq_item", n)

    return enqueue


VARIANTS: dict[str, Callable[[], Enqueue]] = {
    "apply_async": _celery_apply_async,
    "enqueue_unique": _kit_enqueue_unique,
    "dramatiq_send": _dramatiq_send,
    "rq_enqueue": _rq_enqueue,
}


def timed_loop(enqueue: Enqueue, count: int) -> float:
    """Seconds for ``count`` enqueues with distinct arguments, after :data:`WARMUP` untimed."""
    for n in range(-WARMUP, 0):
        enqueue(n)
    began = time.perf_counter()
    for n in range(count):
        enqueue(n)
    return time.perf_counter() - began


def preload(count: int) -> float:
    """The telemetry benchmark's pre-load: ``count`` no-op tasks, pipelined, written as this
    environment's producer would write them (trace context and publish-time headers when
    telemetry is on)."""
    from benchmarks.throughput.preload import preload as pipelined_preload
    from benchmarks.throughput.preload import producer_app

    app = producer_app("kit", os.environ["REDIS_URL"], {}, {})
    began = time.perf_counter()
    try:
        pipelined_preload(app, count)
    finally:
        app.close()
    return time.perf_counter() - began


def timed_bulk(count: int) -> float:
    """Seconds for one ``enqueue_many`` of ``count`` tasks, after an untimed one of
    :data:`WARMUP` (the same distinct arguments as :func:`timed_loop`)."""
    from benchmarks.enqueue.bulk_producer import VARIANTS as BULK

    publish = BULK["enqueue_many"]
    publish(-WARMUP, WARMUP)
    began = time.perf_counter()
    publish(0, count)
    return time.perf_counter() - began


def _run(variant: str, count: int) -> float:
    if variant == "preload":
        return preload(count)
    if variant == "enqueue_many":
        return timed_bulk(count)
    return timed_loop(VARIANTS[variant](), count)


def main(argv: Sequence[str]) -> int:
    entries = [*VARIANTS, "enqueue_many", "preload"]
    if len(argv) != 2 or argv[0] not in entries:
        print(f"usage: {{{'|'.join(entries)}}} <count>", file=sys.stderr)
        return 2
    variant, count = argv[0], int(argv[1])
    from project.telemetry import setup_telemetry, shutdown_telemetry

    providers = setup_telemetry("producer")
    try:
        seconds = _run(variant, count)
    finally:
        shutdown_telemetry()
    result = {
        "variant": variant,
        "count": count,
        "seconds": seconds,
        "rate": count / seconds if seconds > 0 else 0.0,
        "telemetry_exporting": providers is not None,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
