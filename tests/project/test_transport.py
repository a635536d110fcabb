"""The kit's transport never holds a fetched message only in memory: busy queues are fetched
atomically (pop and unacked record in one script), and a message fetched by the idle path's
BRPOP just as Redis goes away is pushed back on reconnect."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis as redis_py
from kombu.entity import Queue
from kombu.messaging import Consumer

from project.application import create_app
from project.broker.transport import QoS
from project.settings import load_settings
from project.up.redis_server import RedisServer


def _app(server: RedisServer) -> Any:
    return create_app(load_settings({"REDIS_URL": server.url}))


def test_a_busy_queue_is_fetched_and_recorded_in_one_step(private_redis: RedisServer) -> None:
    app = _app(private_redis)
    sent = [app.send_task("tests.count", (f"k{i}",), queue="default").id for i in range(3)]
    client = redis_py.Redis.from_url(private_redis.url)
    recorded_at_delivery: list[bool] = []

    def on_message(_body: Any, message: Any) -> None:
        # The QoS did not write yet: the record is the fetch script's own.
        recorded_at_delivery.append(bool(client.hexists("unacked", message.delivery_tag)))
        received.append(message)

    received: list[Any] = []
    with (
        app.connection_for_read() as conn,
        Consumer(conn, [Queue("default")], callbacks=[on_message]),
    ):
        for _ in sent:
            conn.drain_events(timeout=10)
        assert [m.headers["id"] for m in received] == sent  # FIFO, as with BRPOP
        assert recorded_at_delivery == [True, True, True]
        # The record is kombu's own format: a restore puts the message back as it was.
        record = client.hget("unacked", received[0].delivery_tag)
        assert isinstance(record, bytes)
        payload, _exchange, routing_key = json.loads(record)
        assert payload["headers"]["id"] == sent[0] and routing_key == "default"
        assert client.zscore("unacked_index", received[0].delivery_tag) is not None
        for message in received:
            message.ack()
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_a_message_fetched_by_brpop_as_redis_stops_goes_back_to_its_queue(
    private_redis: RedisServer,
) -> None:
    app = _app(private_redis)
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
        channel._busy = False  # as after an idle spell: the next fetch is a BRPOP
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
