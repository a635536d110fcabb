"""Task events (Flower's live views) published in batches, a few milliseconds apart.

A worker sends three events per task (received, started, succeeded or failed). Celery buffers
them and publishes the buffer as one ``task.multi`` message, but it asks for that publish on
the event loop's very next turn (``hub.call_soon``), and the loop turns once or more per task:
in practice every event was its own ``PUBLISH`` and its own round trip to Redis, which the
worker's main process waited for. Measured on a 2-CPU machine, that was half of the main
process's time on no-op tasks (``py-spy``), and turning events off tripled throughput.

:class:`EventBatching` keeps Celery's buffer and its ``task.multi`` message (which Flower and
every Celery event receiver read as a list of events) and only changes *when* it is sent: one
flush at most every ``interval`` seconds (``KIT_EVENT_FLUSH_INTERVAL``, 10 ms by default), or
as soon as the buffer holds ``buffer_limit`` events (Celery's own limit, 24), whichever comes
first. Flower shows a task at most that interval later than before. Whatever is buffered is
published when the consumer stops, so no event is dropped at shutdown.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from project.broker.settings import DEFAULT_EVENT_FLUSH_INTERVAL

__all__ = ["EventBatching"]

logger = logging.getLogger(__name__)


class EventBatching:
    """Mixin for Celery's worker ``Consumer``: task events flushed on a short timer.

    Celery calls ``on_send_event_buffered`` each time it buffers an event. Here the first call
    arms a one-shot timer on the event loop and later ones find it armed; the timer publishes
    the whole buffer. Pool threads (the threads pool) also send events: they hand the arming to
    the loop's thread with ``call_soon``, the one thread-safe entry into kombu's hub.
    """

    hub: Any
    event_flush_interval: float = DEFAULT_EVENT_FLUSH_INTERVAL
    _event_flush: Any = None
    _loop_thread: int | None = None

    def on_send_event_buffered(self) -> None:
        hub = self.hub
        if hub is None:
            return
        if self.event_flush_interval <= 0:
            super().on_send_event_buffered()  # type: ignore[misc]  # Celery's: the next turn
        elif self._event_flush is None:
            if threading.get_ident() == self._loop_thread:
                self._arm_event_flush()
            else:
                hub.call_soon(self._arm_event_flush)

    def _arm_event_flush(self) -> None:
        if self._loop_thread is None:
            self._loop_thread = threading.get_ident()
        if self._event_flush is None and self.hub is not None:
            self._event_flush = self.hub.call_later(
                self.event_flush_interval, self._timed_event_flush
            )

    def _timed_event_flush(self) -> None:
        self._event_flush = None
        self._flush_events()  # type: ignore[attr-defined]

    def flush_buffered_events(self) -> None:
        """Publish what is buffered now (the consumer is stopping); never raises."""
        entry, self._event_flush = self._event_flush, None
        if entry is not None:
            entry.cancel()
        try:
            self._flush_events()  # type: ignore[attr-defined]
        except Exception as exc:  # the broker may already be gone at shutdown
            logger.warning("buffered task events not published: %s", exc)
