"""kombu's Redis transport with the kit's queue ordering.

Stock kombu builds each ``BRPOP`` key list *priority-major*: every queue's priority-0 list,
then every queue's priority-3 list, and so on. A priority-0 message in ``low`` then beats a
priority-5 one in ``critical``, and the queue weights only matter among equal priorities.

The kit decides the other way, like Asynq, where queues *are* the priority: the queue order
(weighted draw or strict) picks the queue, and the task priority (0 most urgent ... 9 least)
orders messages *within* that queue. Only the key order of ``BRPOP`` changes; fetching,
acknowledgement and restore are kombu's own.

It also closes a window in which kombu loses a message. ``BRPOP`` removes the message from
its queue, and only then does a second write record it in the ``unacked`` hash. If Redis goes
away between the two (a restart, a failover), the message exists only in this process and
kombu drops it. Here it is kept in memory and pushed back to its queue, marked redelivered,
before the next fetch. Only a worker that dies while Redis is still unreachable loses it.

Celery selects this class through ``broker_transport`` while ``broker_url`` stays a plain
``redis://`` URL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from time import monotonic
from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from .queues import StrictCycle, WeightedCycle

__all__ = ["SENTINEL_TRANSPORT", "TRANSPORT", "Channel", "QoS", "SentinelTransport", "Transport"]

TRANSPORT = "project.transport:Transport"
#: The same behaviour on kombu's Sentinel transport (``sentinel://`` URLs).
SENTINEL_TRANSPORT = "project.transport:SentinelTransport"

logger = logging.getLogger(__name__)

# (payload, exchange, routing key) of fetched messages whose unacked record failed. Process-wide:
# the failure ends the channel, and the next connection's channel pushes them back.
_unrecorded: list[tuple[dict[str, Any], str, str]] = []
_unrecorded_lock = threading.Lock()
_requeue_lock = threading.Lock()


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
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise _detached(exc) from exc

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise _detached(exc) from exc

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
        except self.channel.connection_errors:
            delivery = message.delivery_info
            with _unrecorded_lock:
                _unrecorded.append((message._raw, delivery["exchange"], delivery["routing_key"]))
            logger.warning(
                "Redis went away as message %s was fetched; it goes back to its queue on reconnect",
                delivery_tag,
            )
            raise


def _detached(exc: AttributeError) -> Exception:
    return RedisConnectionError(f"channel closed after a lost connection ({exc})")


class Channel(redis.Channel):
    """A Redis channel that fetches queue-major and hands its cycle the configured weights."""

    QoS = QoS

    queue_weights: Mapping[str, int] = {}
    from_transport_options = (  # type: ignore[assignment]
        *redis.Channel.from_transport_options,
        "queue_weights",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if isinstance(self._queue_cycle, WeightedCycle | StrictCycle):
            self._queue_cycle.set_weights(self.queue_weights)

    def _brpop_start(self, timeout: float | None = None) -> None:
        # Mirrors kombu's Channel._brpop_start; only the key order differs (queue-major).
        if _unrecorded:
            self.requeue_unrecorded()
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        key_for = self._q_for_pri
        keys = [key_for(q, pri) for q in queues for pri in self.priority_steps]  # type: ignore[no-untyped-call]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        command_args = ["BRPOP", *keys, timeout or 0]
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def requeue_unrecorded(self) -> int:
        """Push back the messages whose unacked record failed; keep them if Redis is still away."""
        if not _requeue_lock.acquire(blocking=False):
            return 0  # another channel of this process is at it
        try:
            with _unrecorded_lock:
                pending = list(_unrecorded)
            if not pending:
                return 0
            try:
                with self.client.pipeline() as pipe:
                    for payload, exchange, routing_key in pending:
                        self._do_restore_message(payload, exchange, routing_key, pipe)  # type: ignore[no-untyped-call]
                    pipe.execute()
            except self.connection_errors:
                return 0  # the next fetch tries again
            with _unrecorded_lock:
                del _unrecorded[: len(pending)]  # only appends happen meanwhile
        finally:
            _requeue_lock.release()
        logger.warning("requeued %d message(s) fetched while Redis went away", len(pending))
        return len(pending)


class Transport(redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, redis.SentinelChannel):
    """The kit's channel, connecting to whichever server Sentinel names the primary."""

    from_transport_options = (  # type: ignore[assignment]
        *redis.SentinelChannel.from_transport_options,
        "queue_weights",
    )


class SentinelTransport(redis.SentinelTransport):
    Channel = SentinelChannel
