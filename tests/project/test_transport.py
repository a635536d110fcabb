"""The kit's transport keeps a message that was fetched just as Redis went away."""

from __future__ import annotations

from typing import Any

import pytest
from kombu.entity import Queue
from kombu.messaging import Consumer

from project.celery_app import create_app
from project.config import load_settings
from project.redis_server import RedisServer
from project.transport import QoS


def test_a_message_fetched_as_redis_stops_goes_back_to_its_queue(
    private_redis: RedisServer,
) -> None:
    app = create_app(load_settings({"REDIS_URL": private_redis.url}))
    private_redis.restart(appendonly=True)  # the pop must survive the stop, as in production
    app.send_task("tests.count", ("window",), queue="default")

    class RedisStopsAfterTheFetch(QoS):
        """Stops the real server between kombu's BRPOP and its unacked record."""

        def append(self, message: Any, delivery_tag: str) -> None:
            private_redis.stop()
            super().append(message, delivery_tag)

    received: list[Any] = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        channel._qos = RedisStopsAfterTheFetch(channel)  # type: ignore[no-untyped-call]
        consumer = Consumer(
            channel, [Queue("default")], callbacks=[lambda _b, m: received.append(m)]
        )
        with consumer, pytest.raises(conn.connection_errors):
            conn.drain_events(timeout=10)
    assert received == []  # nothing ran: the record failed

    private_redis.start()
    with (
        app.connection_for_read() as conn,
        Consumer(conn, [Queue("default")], callbacks=[lambda _b, m: received.append(m)]),
    ):
        conn.drain_events(timeout=10)
    assert [m.headers["argsrepr"] for m in received] == ["('window',)"]
    assert received[0].delivery_info["redelivered"] is True
    received[0].ack()
