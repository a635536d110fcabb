"""Queue pause, kept in Redis so every worker honours it, those started later included.

``kit queue pause Q`` adds Q to the ``kit:paused`` set; each worker's :class:`Pause` middleware
(a timer on the worker's own event loop, so it may touch the consumer safely)
checks the set every ``WATCH_INTERVAL`` seconds and stops or resumes consuming Q. Messages stay
in Redis while their queue is paused; nothing is moved or lost.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from project import keys
from project.broker.connections import as_text
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Middleware

__all__ = ["Pause", "pause", "paused_queues", "resume"]

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds between checks of the paused set


def paused_queues(client: redis.Redis) -> set[str]:
    return {as_text(m) for m in client.smembers(keys.PAUSED)}


def pause(client: redis.Redis, queue: str) -> bool:
    """True if the queue was running and is now paused."""
    return bool(client.sadd(keys.PAUSED, queue))


def resume(client: redis.Redis, queue: str) -> bool:
    return bool(client.srem(keys.PAUSED, queue))


class Pause(Middleware):
    """Stops consuming a paused queue and resumes it, on the consumer's own timer."""

    def __init__(self) -> None:
        self.paused: set[str] = set()
        self._timer: Any = None

    def worker_start(self, consumer: Any) -> None:
        self.paused = set()
        self.check(consumer)  # before the event loop runs: a paused queue is never fetched from
        self._timer = consumer.timer.call_repeatedly(
            WATCH_INTERVAL, self.check, (consumer,), priority=10
        )

    def worker_stop(self, consumer: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self, c: Any) -> None:
        kit = kit_of(c.app)
        try:
            wanted = paused_queues(kit.redis)
        except redis.RedisError as exc:
            logger.debug("pause state not read: %s", exc)
            return
        consumed = set(kit.settings.broker.queue_weights)
        for queue in sorted((wanted - self.paused) & consumed):
            logger.warning("queue %s paused: not consuming it until resumed", queue)
            c.cancel_task_queue(queue)
        for queue in sorted((self.paused - wanted) & consumed):
            logger.warning("queue %s resumed", queue)
            c.add_task_queue(queue)
        self.paused = wanted & consumed
