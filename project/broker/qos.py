"""kombu's Redis QoS (the record of delivered, unacknowledged messages), made cheaper and safe.

The record itself is kombu's: the ``unacked`` hash (message by delivery tag) and the
``unacked_index`` sorted set (delivery tag by time of delivery), from which the visibility
timeout returns messages whose worker died. The kit's fetch script writes both when it pops a
message (:mod:`project.broker.fetch`), so :meth:`QoS.append` only remembers such a message.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kombu.transport import redis, virtual
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["DeferredAcks", "LoopTicks", "QoS", "forget"]

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    """kombu's QoS, made safe for the moment a connection is lost.

    After a lost connection Celery 5.7 collects the kombu connection and then closes it; the
    second close can reach a channel whose transport is already detached, and kombu fails with
    ``AttributeError`` (not a connection error). Raised from Celery's reconnect handler, that
    stopped the whole worker with messages still queued. Here it is a connection error (logged
    by Celery, which reconnects) or, while closing, a warning: the messages concerned are still
    in Redis's ``unacked`` hash, and the visibility timeout returns them to their queue.
    """

    def restore_unacked_once(self, stderr: Any = None) -> None:
        held = len(self._delivered)
        try:
            super().restore_unacked_once(stderr)  # type: ignore[no-untyped-call]
        except (AttributeError, *self.channel.connection_errors) as exc:
            logger.warning(
                "%d unacknowledged message(s) left in Redis; the visibility timeout restores "
                "them (%s: %s)",
                held,
                type(exc).__name__,
                exc,
            )

    def ack(self, delivery_tag: str) -> None:
        """Forget a finished message: its record and its index entry.

        On the worker's event loop the two deletions ride on the channel's next fetch script
        (at most one loop turn later; :meth:`project.broker.transport.Channel.defer_ack`), else
        they go at once, in one round trip. Either way without kombu's MULTI/EXEC: if Redis
        stopped between the two, the index entry would be left without a record, which the
        visibility timeout's restore finds empty and removes (the record goes first for that
        reason). A deferred acknowledgement lost with its connection leaves the message
        recorded: the visibility timeout returns it, and the worker finds its result says
        SUCCESS and does not run it again (``worker_deduplicate_successful_tasks``).
        """
        try:
            if not self.channel.defer_ack(delivery_tag):
                forget(self.channel, [delivery_tag])
            virtual.QoS.ack(self, delivery_tag)
        except AttributeError as exc:
            raise _detached(exc) from exc

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise _detached(exc) from exc

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.prerecorded == delivery_tag:
            # Fetched by the Lua script, which recorded it already: only remember it here.
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]


def forget(channel: Any, delivery_tags: list[str]) -> None:
    """Delete ``delivery_tags``' records, then their index entries, in one round trip."""
    with channel.conn_or_acquire() as client:
        pipe = client.pipeline(transaction=False)
        pipe.hdel(channel.unacked_key, *delivery_tags)
        pipe.zrem(channel.unacked_index_key, *delivery_tags)
        pipe.execute()


def _detached(exc: AttributeError) -> Exception:
    return RedisConnectionError(f"channel closed after a lost connection ({exc})")


class DeferredAcks(redis.Channel):
    """The kit's Redis channel's acknowledgements, which ride on its next fetch."""

    _deferred_acks: list[str]
    #: Loop turns the deferred acknowledgements have waited for a fetch to ride on.
    _acks_waited: int = 0
    _pending: str
    _busy: bool

    def defer_ack(self, delivery_tag: str) -> bool:
        """Keep an acknowledgement for the next fetch script, if this is the event loop's
        thread (the only one that sends fetches); False: the caller forgets it at once."""
        if threading.get_ident() != getattr(self.connection, "loop_thread", None):
            return False
        self._deferred_acks.append(delivery_tag)
        return True

    def flush_acks(self) -> None:
        """Forget the deferred acknowledgements now (no fetch is coming to carry them)."""
        acked, self._deferred_acks = self._deferred_acks, []
        self._acks_waited = 0
        if acked:
            forget(self, acked)

    def on_tick(self) -> None:
        """Each loop turn: deferred acknowledgements wait for a fetch (one in flight or about
        to be sent) for at most two turns, and go on their own otherwise."""
        if not self._deferred_acks:
            return
        fetching = self._in_poll and self._pending == "EVAL"
        will_fetch = self._busy and self.active_queues and self.qos.can_consume()
        if (fetching or will_fetch) and self._acks_waited < 2:
            self._acks_waited += 1
            return
        self.flush_acks()

    def close(self) -> None:
        try:
            self.flush_acks()
        except Exception as exc:  # recorded still: the visibility timeout returns them
            logger.warning("acknowledgements not written at close: %s", exc)
        super().close()  # type: ignore[no-untyped-call]


class LoopTicks:
    """Transport mixin: each event-loop turn, let the channels send what waits on the loop."""

    cycle: Any
    #: The worker's event-loop thread (acknowledgements made there ride on fetches).
    loop_thread: int | None = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        self.loop_thread = threading.get_ident()
        loop.on_tick.add(self._on_tick)

    def _on_tick(self) -> None:
        for channel in list(self.cycle._channels):
            on_tick = getattr(channel, "on_tick", None)
            if on_tick is not None:
                on_tick()
