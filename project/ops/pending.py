"""What waits in a queue: its depth and how long its oldest message has waited.

One reading for every reader: ``kit stats`` (:mod:`project.ops.stats`) and the worker's gauges
``kit.queue.depth`` and ``kit.queue.latency`` (:mod:`project.telemetry.metrics`). A queue is
kombu's lists, one per priority (:func:`~project.broker.queues.queue_keys`); kombu pushes on
the left and pops on the right, so each list's oldest message is its last. A message's age is
measured from the publish time the kit stamps on it (:data:`PUBLISHED_AT_HEADER`); a message
without one (published by a client outside the kit) has no age.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from project.broker.queues import PUBLISHED_AT_HEADER, queue_keys

__all__ = ["Pending", "pending", "published_age"]


@dataclass(frozen=True)
class Pending:
    depth: int  # messages waiting, all priorities
    oldest_age: float | None  # seconds the oldest of them has waited; None: none has an age


def pending(client: redis.Redis, queues: Iterable[str], now: float) -> dict[str, Pending]:
    """Depth and oldest age of each queue, read in one round trip."""
    names = list(queues)
    per_queue = len(queue_keys("q"))
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            for key in queue_keys(queue):
                pipe.llen(key)
                pipe.lindex(key, -1)  # the list's oldest message
        replies = pipe.execute()
    found = {}
    for index, queue in enumerate(names):
        mine = replies[index * per_queue * 2 : (index + 1) * per_queue * 2]
        ages = [age for raw in mine[1::2] if raw and (age := published_age(raw, now)) is not None]
        found[queue] = Pending(sum(mine[0::2]), max(ages) if ages else None)
    return found


def published_age(raw: bytes | str, now: float) -> float | None:
    """Seconds since the message ``raw`` (kombu's JSON envelope) was published, or None."""
    try:
        published = json.loads(raw)["headers"].get(PUBLISHED_AT_HEADER)
        return max(0.0, now - float(published)) if published is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
