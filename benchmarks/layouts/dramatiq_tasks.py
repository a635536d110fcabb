"""The benchmark's actors for ``dramatiq benchmarks.layouts.dramatiq_tasks`` (the reference worker).

The broker URL comes from :data:`URL_ENV`; when it is unset the broker points at a closed port,
so a stray worker never lands on a real Redis. Actors keep Dramatiq's defaults (retries, time
limit, the default middleware) apart from the queue, so the worker is Dramatiq as it comes.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.core import bodies as _stamp

__all__ = ["ACTOR_NAMES", "QUEUE", "URL_ENV", "broker"]

URL_ENV = "BENCH_BROKER_URL"
QUEUE = "bench"
#: Task kind -> actor name, as the producer addresses them.
ACTOR_NAMES = {"noop": "bench_noop", "sleep": "bench_sleep", "stamp": "bench_stamp"}

broker = RedisBroker(url=os.environ.get(URL_ENV, "redis://127.0.0.1:1/0"))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=ACTOR_NAMES["noop"], queue_name=QUEUE)
def noop() -> None:
    """Does nothing, so the measured rate is the worker's own per-task cost."""


@dramatiq.actor(actor_name=ACTOR_NAMES["sleep"], queue_name=QUEUE)
def sleep() -> None:
    _stamp.sleep()


@dramatiq.actor(actor_name=ACTOR_NAMES["stamp"], queue_name=QUEUE)
def stamp(sent: float) -> None:
    _stamp.record(sent)
