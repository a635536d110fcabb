"""kombu's Redis transport with the kit's queue ordering.

Stock kombu builds each ``BRPOP`` key list *priority-major*: every queue's priority-0 list,
then every queue's priority-3 list, and so on. A priority-0 message in ``low`` then beats a
priority-5 one in ``critical``, and the queue weights only matter among equal priorities.

The kit decides the other way, like Asynq, where queues *are* the priority: the queue order
(weighted draw or strict) picks the queue, and the task priority (0 most urgent ... 9 least)
orders messages *within* that queue. Only the key order of ``BRPOP`` changes; fetching,
acknowledgement and restore are kombu's own.

Celery selects this class through ``broker_transport`` while ``broker_url`` stays a plain
``redis://`` URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import monotonic
from typing import Any

from kombu.transport import redis

from .queues import StrictCycle, WeightedCycle

__all__ = ["TRANSPORT", "Channel", "Transport"]

TRANSPORT = "project.transport:Transport"


class Channel(redis.Channel):
    """A Redis channel that fetches queue-major and hands its cycle the configured weights."""

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


class Transport(redis.Transport):
    Channel = Channel
