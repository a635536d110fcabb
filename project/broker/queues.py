"""Queues like Asynq's: weighted or strict ordering of ``critical``, ``default`` and ``low``.

kombu's Redis transport asks a *cycle* object, named by the ``queue_order_strategy`` transport
option, for the order of the queues before each fetch; the kit's fetch script
(:mod:`project.broker.transport`) then pops from the first non-empty queue that is not paused.
The cycles below give that order:

* :class:`WeightedCycle` (the default) gives each fetch a weighted random order, so under
  saturation queue *q* is served ``weight(q) / sum(weights)`` of the time and a low-weight
  queue is never starved (Asynq's default).
* :class:`StrictCycle` always returns the queues by descending weight, so a lower queue is served
  only when every higher one is empty (Asynq's ``StrictPriority``).

Weights reach the cycle through the ``queue_weights`` transport option, read by
:class:`project.broker.transport.Channel`. How per-task priorities combine with queues is
decided there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kombu.entity import Exchange, Queue

from project.lifecycle.middleware import Middleware, Publish

__all__ = [
    "PRIORITY_STEPS",
    "PUBLISHED_AT_HEADER",
    "STRICT_CYCLE",
    "WEIGHTED_CYCLE",
    "DeclaredQueueRouter",
    "Stamp",
    "StrictCycle",
    "WeightedCycle",
    "declare_queues",
    "queue_keys",
]

#: kombu's Redis priority lists per queue: one per priority, so 0-9 are all distinct.
PRIORITY_STEPS: tuple[int, ...] = tuple(range(10))
#: kombu's separator between a queue name and its priority in the Redis list key.
PRIORITY_SEP = "\x06\x16"

#: Message header with the publish time (Unix seconds).
PUBLISHED_AT_HEADER = "kit_published_at"

WEIGHTED_CYCLE = "project.broker.queues:WeightedCycle"
STRICT_CYCLE = "project.broker.queues:StrictCycle"


class _WeightedQueues:
    """Shared state of the cycles: the consumed queue names and their weights (default 1)."""

    def __init__(self, items: Iterable[str] | None = None) -> None:
        self.items: list[str] = list(items or [])
        self.weights: dict[str, int] = {}

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)

    def update(self, it: Iterable[str]) -> None:
        self.items[:] = it

    def rotate(self, last_used: str) -> None:
        """kombu reports each queue it served; the order does not depend on history."""

    def _weight(self, queue: str) -> int:
        return self.weights.get(queue, 1)


class WeightedCycle(_WeightedQueues):
    """A weighted random order per fetch, dealt from a shuffled deck.

    The queue tried first is dealt from a deck holding ``weight(q)`` cards per queue, shuffled
    and refilled when empty; the other queues follow in a weighted random order (keys
    ``u ** (1 / w)``, Efraimidis-Spirakis), for when the first is empty. Each queue is tried
    first ``w(q) / sum(w)`` of the time, as with independent draws (Asynq's rule), but *exactly*
    so over every deck: shares under saturation do not drift, and a low-weight queue waits at
    most one deck (10 fetches with the default weights) for its turn.
    """

    def __init__(self, items: Iterable[str] | None = None, rng: random.Random | None = None):
        super().__init__(items)
        self._rng = rng or random.Random()
        self._deck: list[str] = []

    def set_weights(self, weights: Mapping[str, int]) -> None:
        super().set_weights(weights)
        self._deck.clear()

    def update(self, it: Iterable[str]) -> None:
        super().update(it)
        self._deck.clear()

    def consume(self, n: int) -> list[str]:
        if not self.items:
            return []
        if not self._deck:
            self._deck = [q for q in self.items for _ in range(self._weight(q))]
            self._rng.shuffle(self._deck)
        first = self._deck.pop()
        draw = self._rng.random
        rest = sorted(
            (q for q in self.items if q != first),
            key=lambda q: draw() ** (1.0 / self._weight(q)),
            reverse=True,
        )
        return [first, *rest][:n]


class StrictCycle(_WeightedQueues):
    """Queues by descending weight, always: a lower queue waits until the higher ones are empty."""

    def consume(self, n: int) -> list[str]:
        return sorted(self.items, key=lambda q: (-self._weight(q), q))[:n]


def queue_keys(queue: str) -> list[str]:
    """The Redis lists holding ``queue``'s waiting messages, most urgent priority first."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def declare_queues(weights: Mapping[str, int]) -> tuple[Queue, ...]:
    """One direct exchange and queue per configured name (kombu's Redis list keys)."""
    return tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in weights)


class Stamp(Middleware):
    """Gives every message of the app a priority and a publish time (:data:`PUBLISHED_AT_HEADER`).

    Celery applies ``task_default_priority`` to ``Task.apply_async`` but not to every message it
    publishes: a chord's callback, for one, goes out with no priority, which kombu's Redis
    transport files as priority 0, the most urgent, ahead of everything in its queue. The
    publish time gives ``kit stats`` the age of the oldest waiting task and telemetry the time
    spent in the queue.
    """

    def __init__(self, default_priority: int) -> None:
        self.default_priority = default_priority

    def before_publish(self, message: Publish) -> None:
        if message.properties.get("priority") is None:
            message.properties["priority"] = self.default_priority
        message.headers[PUBLISHED_AT_HEADER] = time.time()


class DeclaredQueueRouter:
    """Route a task to the queue its definition declares (``@app.task(default_queue="low")``).

    Celery deprecates the ``queue`` task attribute in favour of routes; this router is that
    route, read from the task itself so the catalog declares each queue once, next to the task.
    It serves ``send_task`` by name too. A ``queue=`` given by the caller always wins.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(
        self,
        name: str,
        args: Any,
        kwargs: Any,
        options: Mapping[str, Any],
        task: Any = None,
        **kw: Any,
    ) -> dict[str, str] | None:
        queue = getattr(task or self.app.tasks.get(name), "default_queue", None)
        return {"queue": queue} if queue else None
