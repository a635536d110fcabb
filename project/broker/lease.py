"""Leases on delivered messages: a short visibility timeout that live workers keep extending.

kombu's Redis transport keeps every delivered, unacknowledged message in ``unacked_index`` (a
sorted set scored by fetch time) and any worker's periodic sweep hands a message back to its
queue once its score is older than the visibility timeout. A long timeout (Celery's 1 h) makes
a dead worker's tasks wait an hour; a short one redelivers a live worker's long tasks and held
ETA tasks: duplicates. Like Asynq's lease, each worker here re-scores the messages it holds to
"now" every ``visibility_timeout / 4`` seconds, so only a dead worker's messages age out, and
they come back within one timeout (plus one sweep) of its death.

A thread, not the event loop: a busy loop (a solo pool running a long task) must not let the
lease lapse. The thread starts with the worker's consumer and keeps running across reconnects
(each reconnect brings a new channel, picked up at ``worker_start``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Middleware

__all__ = ["RESTORE_INTERVAL", "Leases"]

logger = logging.getLogger(__name__)

#: Seconds between the transport's sweeps for expired leases (kombu's default is 100).
RESTORE_INTERVAL = 5


class Leases(Middleware):
    """Renews the leases of the messages this worker holds."""

    def __init__(self) -> None:
        self._qos: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def worker_start(self, consumer: Any) -> None:
        self._qos = consumer.task_consumer.channel.qos
        if self._thread is None or not self._thread.is_alive():
            kit = kit_of(consumer.app)
            interval = max(0.5, kit.settings.broker.visibility_timeout / 4)
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(kit.redis, interval), name="kit-lease", daemon=True
            )
            self._thread.start()

    def worker_stop(self, consumer: Any) -> None:
        self._qos = None  # a reconnect brings a new channel; worker_start picks it up

    def worker_shutdown(self, consumer: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, client: Any, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.renew(client)
            except Exception:
                logger.warning("message leases not renewed; retrying", exc_info=True)

    def renew(self, client: Any) -> int:
        qos = self._qos
        if qos is None:
            return 0
        tags = _snapshot(qos._delivered)
        if not tags:
            return 0
        now = time.time()
        # XX: only messages still unacknowledged; an acked one must not come back to life.
        return int(client.zadd(qos.unacked_index_key, dict.fromkeys(tags, now), xx=True, ch=True))


def _snapshot(delivered: Any) -> list[str]:
    """The delivery tags, copied while the event loop may be changing the dict."""
    for _ in range(5):
        try:
            return [str(tag) for tag in list(delivered.keys())]
        except RuntimeError:  # changed size during iteration
            continue
    return []
