"""The benchmark's actors for ``dramatiq benchmarks.layouts.dramatiq_tasks`` (the reference).

The broker URL comes from ``BENCH_BROKER_URL``; when it is unset the broker points at a closed port,
so a stray worker never lands on a real Redis. Actors keep Dramatiq's defaults (retries, time
limit, the default middleware) apart from the queue, so the worker is Dramatiq as it comes; their
bodies are every framework's (:mod:`benchmarks.core.bodies`).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.core import bodies

__all__ = ["ACTOR_NAMES", "broker"]

#: Task kind -> actor name, as the producer addresses them.
ACTOR_NAMES = {kind: f"bench_{kind}" for kind in bodies.KINDS}

broker = RedisBroker(url=os.environ.get(bodies.BROKER_URL_ENV, "redis://127.0.0.1:1/0"))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)

for _kind, _name in ACTOR_NAMES.items():
    dramatiq.actor(actor_name=_name, queue_name=bodies.QUEUE)(getattr(bodies, _kind))
