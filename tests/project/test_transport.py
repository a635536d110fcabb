"""The kit's transport never holds a fetched message only in memory: every fetch, busy or
after an idle spell, pops and records in one script, which skips paused queues; an idle
channel waits on its queues' bells without popping anything; and the connection's URL keeps the
``redis://`` scheme (Flower picks its broker client by it)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis as redis_py
from kombu.entity import Queue
from kombu.messaging import Consumer

from project import keys
from project.application import create_app
from project.broker import fetch
from project.broker.pause import pause, resume
from project.broker.queues import PRIORITY_SEP
from project.broker.transport import BELLS_PER_FLUSH
from project.settings import load_settings
from project.up.redis_server import RedisServer
from tests.support.polling import eventually


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
        deadline = time.monotonic() + 10
        while len(received) < len(sent) and time.monotonic() < deadline:
            conn.drain_events(timeout=10)  # one fetch may deliver several messages
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


def test_after_an_idle_spell_a_message_is_fetched_and_recorded_in_one_step(
    private_redis: RedisServer,
) -> None:
    app = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    sent = app.send_task("tests.count", ("idle",), queue="default").id
    assert client.llen(keys.queue_bell("default")) == 1  # the publish rang the queue's bell
    recorded_at_delivery: list[bool] = []
    received: list[Any] = []

    def on_message(_body: Any, message: Any) -> None:
        recorded_at_delivery.append(bool(client.hexists("unacked", message.delivery_tag)))
        received.append(message)

    with app.connection_for_read() as conn:
        channel = conn.default_channel
        channel._busy = False  # as after an idle spell: wait on the bells, then fetch
        with Consumer(channel, [Queue("default")], callbacks=[on_message]):
            conn.drain_events(timeout=10)
        assert [m.headers["id"] for m in received] == [sent]
        assert recorded_at_delivery == [True]
        received[0].ack()
    assert client.hlen("unacked") == 0


def test_an_idle_channel_sends_its_fetch_with_its_wait_and_records_when_it_ran(
    private_redis: RedisServer,
) -> None:
    app = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url, decode_responses=True)
    received: list[Any] = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        channel._busy = False  # as after an idle spell: wait on the bells
        with Consumer(channel, [Queue("default")], callbacks=[lambda _b, m: received.append(m)]):
            waiting = threading.Thread(target=conn.drain_events, kwargs={"timeout": 10})
            waiting.start()

            def blocked_with_fetch_queued() -> bool:
                # The fetch script waits in the blocked connection's query buffer, unparsed.
                return any(
                    c["cmd"] == "blpop" and int(c["qbuf"]) > len(fetch.FETCH_SHA)
                    for c in client.client_list()
                )

            eventually(blocked_with_fetch_queued, 5)
            time.sleep(0.5)  # a wait well under way when the message comes
            published_at = time.time()
            sent = app.send_task("tests.count", ("woken",), queue="default").id
            waiting.join(10)
        assert [m.headers["id"] for m in received] == [sent]
        # The lease starts at the fetch, when the bell rang, not when the wait began.
        recorded_at = client.zscore("unacked_index", received[0].delivery_tag)
        assert recorded_at is not None and recorded_at >= published_at - 0.05
        received[0].ack()
    assert client.hlen("unacked") == 0


def test_a_paused_queue_is_skipped_and_resume_wakes_an_idle_channel(
    private_redis: RedisServer,
) -> None:
    app = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    pause(client, "low")
    app.send_task("tests.count", ("held",), queue="low")
    sent = app.send_task("tests.count", ("free",), queue="default").id
    received: list[Any] = []
    with (
        app.connection_for_read() as conn,
        Consumer(
            conn, [Queue("low"), Queue("default")], callbacks=[lambda _b, m: received.append(m)]
        ),
    ):
        conn.drain_events(timeout=10)
        assert [m.headers["id"] for m in received] == [sent]
        with pytest.raises(TimeoutError):  # socket.timeout: nothing else may be fetched
            conn.drain_events(timeout=1.5)
        assert client.llen("low" + PRIORITY_SEP + "5") == 1
        assert client.llen(keys.queue_bell("low")) == 0  # an empty fetch silenced the bells
        resume(client, "low")
        started = time.monotonic()
        conn.drain_events(timeout=10)
        assert time.monotonic() - started < 0.5  # the bell, not the one-second look
        assert received[1].headers["argsrepr"] == "('held',)"
        for message in received:
            message.ack()


def test_a_synchronous_get_is_recorded_in_the_same_step(private_redis: RedisServer) -> None:
    app = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    sent = app.send_task("tests.count", ("get",), queue="default").id
    with app.connection_for_read() as conn:
        message = Queue("default", channel=conn.default_channel).get()
        assert message is not None and message.headers["id"] == sent
        assert client.hexists("unacked", message.delivery_tag)
        message.ack()
    assert client.hlen("unacked") == 0


@pytest.mark.parametrize(
    ("url", "shown", "with_password"),
    [
        ("redis://:s3cret@127.0.0.1:6390/2", "redis://:**@127.0.0.1:6390/2", "redis://:s3cret@"),
        ("rediss://:s3cret@127.0.0.1:6390/0", "rediss://:**@127.0.0.1:6390/0", "rediss://:s3cret@"),
        (
            "sentinel://:s3cret@127.0.0.1:26379/0;sentinel://:s3cret@127.0.0.1:26380/0",
            "sentinel://:**@127.0.0.1:26379/0",
            "sentinel://:s3cret@",
        ),
    ],
)
def test_the_connection_url_keeps_its_redis_scheme(
    url: str, shown: str, with_password: str
) -> None:
    env = {"REDIS_URL": url, "KIT_SENTINEL_MASTER": "primary"} if "sentinel" in url else {}
    app = create_app(load_settings(env or {"REDIS_URL": url}))
    with app.connection_for_read() as conn:
        assert conn.as_uri() == shown
        assert conn.as_uri(include_password=True).startswith(with_password)


def test_a_pipelined_batch_rings_each_queue_bell_once_per_flush(redis: Any) -> None:
    from project.enqueue.bulk import enqueue_many
    from tests.support.tasks import add, on_low

    enqueue_many([add.s(n, n) for n in range(50)] + [on_low.s()], batch_size=500)
    # One item per idle worker it may wake, at most BELLS_PER_FLUSH, in one LPUSH per queue.
    assert redis.llen(keys.queue_bell("default")) == BELLS_PER_FLUSH
    assert redis.llen(keys.queue_bell("low")) == 1
