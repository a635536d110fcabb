"""kombu's Redis transport with the kit's queue ordering.

Stock kombu builds each ``BRPOP`` key list *priority-major*: every queue's priority-0 list,
then every queue's priority-3 list, and so on. A priority-0 message in ``low`` then beats a
priority-5 one in ``critical``, and the queue weights only matter among equal priorities.

The kit decides the other way, like Asynq, where queues *are* the priority: the queue order
(weighted draw or strict) picks the queue, and the task priority (0 most urgent ... 9 least)
orders messages *within* that queue. Only the key order of ``BRPOP`` changes; fetching,
acknowledgement and restore are kombu's own.

Fetching is atomic while there is work. kombu's ``BRPOP`` pops a message and only then, in a
second write, records it as unacknowledged; a pop whose reply never reaches the worker (Redis
drops pending replies when it shuts down) or whose record never follows loses the message.
While queues hold messages, this channel fetches with one Lua script instead, which pops the
next message (same queue order) and records it in ``unacked`` and ``unacked_index`` in one
atomic step, like Asynq's dequeue script: a lost reply leaves it recorded, and the visibility
timeout returns it. Only when every queue is empty does the channel block in ``BRPOP``, whose
message (the first after an idle spell) takes kombu's two-write path.

That path also had a window in which kombu loses a message. ``BRPOP`` removes the message from
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
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError

from project.broker.queues import StrictCycle, WeightedCycle

__all__ = ["SENTINEL_TRANSPORT", "TRANSPORT", "Channel", "QoS", "SentinelTransport", "Transport"]

TRANSPORT = "project.broker.transport:Transport"
#: The same behaviour on kombu's Sentinel transport (``sentinel://`` URLs).
SENTINEL_TRANSPORT = "project.broker.transport:SentinelTransport"

logger = logging.getLogger(__name__)

# (payload, exchange, routing key) of fetched messages whose unacked record failed, per broker
# (two kit apps in one process may use two): the failure ends the channel, and the next
# connection's channel to the same broker pushes them back.
_unrecorded: dict[str, list[tuple[dict[str, Any], str, str]]] = {}
_unrecorded_lock = threading.Lock()
_requeue_lock = threading.Lock()

# KEYS: unacked hash, unacked index, then the queue keys in fetch order. ARGV: now.
# Returns {key, payload} like BRPOP, or nil when every queue is empty.
_FETCH = """
for i = 3, #KEYS do
  local payload = redis.call('rpop', KEYS[i])
  if payload then
    local message = cjson.decode(payload)
    local properties = message['properties']
    local delivery = properties['delivery_info']
    local tag = properties['delivery_tag']
    local record = '[' .. payload .. ',' .. cjson.encode(delivery['exchange']) .. ','
      .. cjson.encode(delivery['routing_key']) .. ']'
    redis.call('zadd', KEYS[2], ARGV[1], tag)
    redis.call('hset', KEYS[1], tag, record)
    return {KEYS[i], payload}
  end
end
return nil
"""


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
        if self.channel.prerecorded == delivery_tag:
            # Fetched by the Lua script, which recorded it already: only remember it here.
            virtual.QoS.append(self, message, delivery_tag)
            return
        try:
            super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
        except self.channel.connection_errors:
            delivery = message.delivery_info
            with _unrecorded_lock:
                _unrecorded.setdefault(_broker(self.channel), []).append(
                    (message._raw, delivery["exchange"], delivery["routing_key"])
                )
            logger.warning(
                "Redis went away as message %s was fetched; it goes back to its queue on reconnect",
                delivery_tag,
            )
            raise


def _broker(channel: Any) -> str:
    """Which broker a channel talks to (its connection's URL)."""
    return str(channel.connection.client.as_uri(include_password=True))


def _detached(exc: AttributeError) -> Exception:
    return RedisConnectionError(f"channel closed after a lost connection ({exc})")


class Channel(redis.Channel):
    """A Redis channel that fetches queue-major and hands its cycle the configured weights."""

    QoS = QoS

    queue_weights: Mapping[str, int] = {}
    #: The delivery tag the Lua fetch recorded, while that message is being delivered.
    prerecorded: str | None = None
    #: Queues had work at the last fetch: fetch with the script, not BRPOP.
    _busy: bool = True
    _fetching: bool = False
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
        if _unrecorded.get(_broker(self)):
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
        self._fetching = self._busy and not self.global_keyprefix
        if self._fetching:
            unacked = [self.unacked_key, self.unacked_index_key]
            command_args = ["EVAL", _FETCH, len(keys) + 2, *unacked, *keys, time()]
        else:
            command_args = ["BRPOP", *keys, timeout or 0]
            if self.global_keyprefix:
                command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _brpop_read(self, **options: Any) -> bool:
        if not self._fetching:
            delivered = bool(super()._brpop_read(**options))  # type: ignore[no-untyped-call]
            self._busy = True  # a message after an idle spell: there may be more
            return delivered
        # The script's reply: parsed and delivered as kombu does a BRPOP reply.
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVAL", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                self._busy = False  # every queue empty: block in BRPOP next time
                raise Empty()
            key, payload = reply
            message = loads(bytes_to_str(payload))
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self.prerecorded = message["properties"]["delivery_tag"]
            try:
                self.connection._deliver(message, queue)
            finally:
                self.prerecorded = None
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._fetching = False
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]

    def requeue_unrecorded(self) -> int:
        """Push back the messages whose unacked record failed; keep them if Redis is still away."""
        if not _requeue_lock.acquire(blocking=False):
            return 0  # another channel of this process is at it
        try:
            broker = _broker(self)
            with _unrecorded_lock:
                pending = list(_unrecorded.get(broker, ()))
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
                del _unrecorded[broker][: len(pending)]  # only appends happen meanwhile
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
