"""The per-task path's costs, made cheap without losing what each one is for.

Each test pins one of the performance issue's changes to the behaviour it must keep: events
batched but all delivered, results written in one script that never overwrites SUCCESS, no
result subscription per publish, one fetch for the free prefetch window with acknowledgements
riding on it, control replies never recorded as delivered, one round trip per publish.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import redis as redis_py
from celery import group, states
from celery.app.task import Context
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from project import app
from project.application import create_app
from project.broker import fetch
from project.results.backend import ResultWrites
from project.settings import load_settings
from project.up.redis_server import RedisServer
from tests.support.polling import eventually
from tests.support.tasks import add, count


def _app(server: RedisServer) -> Any:
    return create_app(load_settings({"REDIS_URL": server.url, "KIT_CATALOG": ""}))


def _calls(client: redis_py.Redis) -> Counter[str]:
    """Commands Redis has run, by name (this INFO itself left out)."""
    stats = client.info("commandstats")
    calls = Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})
    del calls["info"]
    return calls


def _noop() -> None:
    """A task body that does nothing."""


class _EventTap:
    """Every task-event message a worker publishes on the session's Redis (raw Pub/Sub)."""

    def __init__(self, url: str) -> None:
        self.messages: list[list[dict[str, Any]]] = []
        self._pubsub = redis_py.Redis.from_url(url).pubsub(  # type: ignore[no-untyped-call,unused-ignore]
            ignore_subscribe_messages=True
        )
        self._pubsub.psubscribe("*celeryev/task.*")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                item = self._pubsub.get_message(timeout=0.2)
            except (redis_py.RedisError, ValueError, OSError):
                return  # closed under the read
            if item is None or item.get("type") != "pmessage":
                continue
            body = json.loads(base64.b64decode(json.loads(item["data"])["body"]))
            self.messages.append(body if isinstance(body, list) else [body])

    def events(self) -> list[dict[str, Any]]:
        return [event for message in list(self.messages) for event in message]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._pubsub.close()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_task_events_are_published_in_batches_and_none_is_lost(
    start_worker: Any, redis_url: str
) -> None:
    tap = _EventTap(redis_url)
    try:
        start_worker(concurrency=2)
        ids = [count.delay(f"events-{n}").id for n in range(40)]
        for task_id in ids:
            app.AsyncResult(task_id).get(timeout=60)

        def every_task_succeeded() -> bool:
            done = {e.get("uuid") for e in tap.events() if e["type"] == "task-succeeded"}
            return set(ids) <= done

        eventually(every_task_succeeded, timeout=10)
        seen = Counter((e["uuid"], e["type"]) for e in tap.events() if e.get("uuid") in set(ids))
        for task_id in ids:  # the producer's task-sent, and the worker's three
            for kind in ("task-sent", "task-received", "task-started", "task-succeeded"):
                assert seen[(task_id, kind)] == 1, (task_id, kind)
        worker_messages = [m for m in tap.messages if m and m[0]["type"] != "task-sent"]
        worker_events = sum(len(m) for m in worker_messages)
        assert worker_events >= 3 * len(ids)
        assert len(worker_messages) < worker_events / 2  # batched, not one message per event
    finally:
        tap.close()


def test_a_late_duplicate_never_overwrites_a_success(private_redis: RedisServer) -> None:
    backend = _app(private_redis).backend
    backend.store_result("t-1", 42, states.SUCCESS)

    backend.store_result("t-1", None, states.RETRY)
    backend.store_result("t-1", ValueError("late duplicate"), states.FAILURE)

    assert backend.get_task_meta("t-1")["status"] == states.SUCCESS
    assert backend.get_task_meta("t-1")["result"] == 42


def test_a_retry_state_is_overwritten_by_the_success_that_follows(
    private_redis: RedisServer,
) -> None:
    backend = _app(private_redis).backend
    backend.store_result("t-2", None, states.RETRY)

    backend.store_result("t-2", 7, states.SUCCESS)

    assert backend.get_task_meta("t-2")["status"] == states.SUCCESS


def test_a_result_is_written_by_one_script_without_a_transaction(
    private_redis: RedisServer,
) -> None:
    backend = _app(private_redis).backend
    client = backend.client
    backend.store_result("t-warm", 1, states.SUCCESS)  # the script is loaded once
    before = _calls(client)

    backend.store_result("t-3", 1, states.SUCCESS)

    spent = _calls(client) - before
    assert spent["evalsha"] == 1
    assert spent["multi"] == 0 and spent["exec"] == 0 and spent["setex"] == 0
    assert client.ttl(backend.get_key_for_task("t-3")) > 0  # result_expires still applies


def _requests() -> list[Any]:
    """Requests whose results carry every optional field Celery's metadata has, and none."""
    full = Context(
        task="tests.add",
        args=[1, 2],
        kwargs={"k": "v"},
        hostname="w1@host",
        retries=2,
        group="g-1",
        parent_id="p-1",
        delivery_info={"routing_key": "critical"},
        stamped_headers=["stamp"],
        stamps={"stamp": "s-1", "other": "not stamped"},
    )
    return [None, Context(), Context(task="tests.add", delivery_info=None), full]


@pytest.mark.parametrize("extended", [True, False])
@pytest.mark.parametrize("state", [states.SUCCESS, states.FAILURE, states.RETRY])
def test_a_results_metadata_is_celerys_field_for_field(
    private_redis: RedisServer, extended: bool, state: str
) -> None:
    kit = _app(private_redis)
    kit.conf.result_extended = extended
    backend = kit.backend
    celerys = super(ResultWrites, backend)._get_result_meta  # Celery's own, on the same backend

    for request in _requests():
        ours = backend._get_result_meta(7, state, "tb", request)
        theirs = celerys(7, state, "tb", request)

        ours_done, theirs_done = ours.pop("date_done"), theirs.pop("date_done")
        assert ours == theirs
        assert list(ours) == list(theirs)  # the same order, so the same encoded bytes
        if state in states.READY_STATES:
            now, then = datetime.fromisoformat(ours_done), datetime.fromisoformat(theirs_done)
            assert now.utcoffset() == then.utcoffset()
            assert abs((now - then).total_seconds()) < 5
        else:
            assert ours_done is None and theirs_done is None


def test_a_result_written_after_redis_lost_its_scripts_is_stored(
    private_redis: RedisServer,
) -> None:
    backend = _app(private_redis).backend
    backend.store_result("t-4", 1, states.SUCCESS)
    backend.client.script_flush()

    backend.store_result("t-5", 2, states.SUCCESS)

    assert backend.get_task_meta("t-5")["result"] == 2


def test_results_written_from_many_threads_at_once_are_all_stored_on_their_own_connections(
    private_redis: RedisServer,
) -> None:
    backend = _app(private_redis).backend
    pool = backend.client.connection_pool
    lent_before = len(pool._in_use_connections) + len(pool._available_connections)
    start = threading.Barrier(8)

    def write(thread: int) -> None:
        start.wait()
        for n in range(50):
            backend.store_result(f"many-{thread}-{n}", [thread, n], states.SUCCESS)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # The writes took no connection from the client's pool (its lock is what they avoid).
    assert len(pool._in_use_connections) + len(pool._available_connections) == lent_before
    keys = [backend.get_key_for_task(f"many-{t}-{n}") for t in range(8) for n in range(50)]
    stored = [json.loads(raw) for raw in backend.client.mget(keys)]
    assert [meta["result"] for meta in stored] == [[t, n] for t in range(8) for n in range(50)]


def test_a_result_written_after_redis_restarted_is_stored(private_redis: RedisServer) -> None:
    backend = _app(private_redis).backend
    backend.store_result("before-restart", 1, states.SUCCESS)

    private_redis.restart()  # the writer's connection is now closed by the server
    backend.store_result("after-restart", 2, states.SUCCESS)

    assert backend.get_task_meta("after-restart")["result"] == 2


def test_publishing_subscribes_to_no_result_channel(private_redis: RedisServer) -> None:
    kit = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    noop = kit.task(name="tests.path_noop", shared=False)(_noop)

    result = noop.apply_async()

    channel = kit.backend.get_key_for_task(result.id)
    assert client.pubsub_numsub(channel) == [(channel, 0)]


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_task_id_used_again_gets_its_own_result_not_a_late_copy_of_the_first(
    private_redis: RedisServer,
) -> None:
    """A caller that waits subscribes, then reads: the first run's result, written in between,
    is read and also arrives on the channel later. The next run under the same id (after
    ``forget()``) must get its own result, not that copy."""
    import threading

    kit = _app(private_redis)
    backend = kit.backend
    task_id = "receipt-42"
    backend.result_consumer.consume_from(task_id)  # subscribed, as a waiter is
    backend.store_result(task_id, "first", states.SUCCESS)  # published to that subscription
    first = kit.AsyncResult(task_id)
    assert first.get(timeout=10) == "first"
    first.forget()

    second = kit.AsyncResult(task_id)
    later = threading.Timer(0.5, backend.store_result, (task_id, "second", states.SUCCESS))
    later.start()
    try:
        assert second.get(timeout=10) == "second"
    finally:
        later.cancel()


@pytest.mark.timeout(60)
def test_a_waiter_whose_result_was_published_before_it_subscribed_still_gets_it(
    private_redis: RedisServer,
) -> None:
    """A waiter subscribes on one connection and reads the stored result on another, and Redis
    may run the read first: a result stored and published between the two reaches neither.
    Here the result is stored without a publish (as a waiter that missed it sees it); the
    waiter must still get it, by reading the stored results while it waits."""
    import json
    import threading
    import time

    from project.results.backend import RECHECK_EVERY

    kit = _app(private_redis)
    backend = kit.backend
    task_id = "missed-publish-1"
    meta = {"status": states.SUCCESS, "result": "done", "traceback": None, "children": []}
    meta.update(task_id=task_id, date_done="2026-12-01T12:00:00.000000+00:00")
    key = backend.get_key_for_task(task_id)
    store = threading.Timer(0.3, backend.client.set, (key, json.dumps(meta)))  # no PUBLISH
    waiter = kit.AsyncResult(task_id)
    store.start()
    began = time.monotonic()
    try:
        assert waiter.get(timeout=20) == "done"
    finally:
        store.cancel()
    assert time.monotonic() - began < RECHECK_EVERY + 5  # read again within about a second


def test_a_caller_that_waits_still_gets_results_published_after_the_call(
    start_worker: Any,
) -> None:
    single = add.delay(2, 3)
    joined = group(add.s(n, n) for n in range(10)).apply_async()
    start_worker(concurrency=2)  # the tasks finish after the calls were made

    assert single.get(timeout=60) == 5
    assert joined.join_native(timeout=60) == [2 * n for n in range(10)]


def test_one_fetch_takes_the_free_prefetch_window_and_carries_the_acknowledgements(
    private_redis: RedisServer,
) -> None:
    kit = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    sent = [kit.send_task("tests.count", (f"w{n}",), queue="default").id for n in range(5)]
    received: list[Any] = []
    with kit.connection_for_read() as conn:
        channel = conn.default_channel
        channel.basic_qos(prefetch_count=3)
        with Consumer(channel, [Queue("default")], callbacks=[lambda _b, m: received.append(m)]):
            before = _calls(client)
            conn.drain_events(timeout=10)
            assert len(received) == 3 and client.hlen("unacked") == 3
            spent = _calls(client) - before
            assert spent["evalsha"] + spent["eval"] == 1  # one script for the three
            for message in received:
                message.ack()  # not on an event loop: each goes at once
            conn.drain_events(timeout=10)
        assert [m.headers["id"] for m in received] == sent
        for message in received[3:]:
            message.ack()
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_a_reply_queue_consumed_without_acknowledgements_is_never_recorded(
    private_redis: RedisServer,
) -> None:
    kit = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    replies = Queue("path.reply", Exchange("path.reply", type="direct"), routing_key="path.reply")
    got: list[Any] = []
    with kit.connection_for_read() as conn:
        channel = conn.default_channel
        with Consumer(channel, [replies], no_ack=True, callbacks=[lambda b, _m: got.append(b)]):
            for n in range(3):
                Producer(channel).publish(
                    {"n": n}, exchange=replies.exchange, routing_key="path.reply", declare=[replies]
                )
            eventually(lambda: conn.drain_events(timeout=1) or len(got) == 3, timeout=10)

    assert [b["n"] for b in got] == [0, 1, 2]
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_the_fetch_script_without_lmpop_pops_in_the_same_order(
    private_redis: RedisServer,
) -> None:
    client = redis_py.Redis.from_url(private_redis.url)
    lists = [f"q\x06\x16{p}" for p in range(10)]
    for priority, tag in ((5, "b"), (0, "a"), (5, "c")):
        message = {
            "properties": {
                "delivery_tag": tag,
                "delivery_info": {"exchange": "q", "routing_key": "q"},
            }
        }
        client.lpush(lists[priority], json.dumps(message))
    script_keys = ["unacked", "unacked_index", "kit:paused", "bell", *lists]

    popped = fetch.parse_reply(
        client.execute_command(  # type: ignore[no-untyped-call]
            *fetch.fetch_command(script_keys, 10, ["q"], 3, now=1.0, lmpop=False, trim=True)
        )
    )

    assert [json.loads(p)["properties"]["delivery_tag"] for _, p in popped] == ["a", "b", "c"]
    assert sorted(client.hkeys("unacked")) == [b"a", b"b", b"c"]


def test_apply_async_sends_its_message_bell_and_sent_event_and_nothing_else(
    private_redis: RedisServer,
) -> None:
    kit = _app(private_redis)
    client = redis_py.Redis.from_url(private_redis.url)
    noop = kit.task(name="tests.path_noop2", shared=False)(_noop)
    noop.apply_async()  # connections and declarations made once
    before = _calls(client)

    noop.apply_async()

    spent = +(_calls(client) - before)
    assert spent == Counter({"lpush": 2, "publish": 1}), spent  # message, bell, task-sent
