"""apply_async/delay of a plain task: published by the kit, the very message and event Celery's
path writes, and Celery's path for everything else."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import signals
from redis.exceptions import ConnectionError as RedisConnectionError

from project import ValidationError, app
from project.broker.publish import Publishing
from project.delay.forwarder import DurableDelay
from project.enqueue import direct
from tests.support.messages import raw_messages
from tests.support.polling import eventually
from tests.support.tasks import add, on_low, spawn


def _waiting(redis: Any) -> list[dict[str, Any]]:
    """Every message waiting in a queue list, decoded."""
    lists = [key for key in redis.keys("*") if redis.type(key) == "list" and key[:4] != "kit:"]
    return [json.loads(raw) for key in lists for raw in redis.lrange(key, 0, -1)]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the tasks the kit's direct path published (each message's task id)."""
    ids: list[str] = []
    publish = Publishing.publish_plain

    def spy(self: Any, key: str, queue: str, payload: str, *args: Any) -> None:
        ids.append(json.loads(payload)["headers"]["id"])
        publish(self, key, queue, payload, *args)

    monkeypatch.setattr(Publishing, "publish_plain", spy)
    return ids


_CALLS: list[Callable[[], Any]] = [
    lambda: add.apply_async((1, 2), task_id="id-plain"),
    lambda: add.apply_async(['é\n"', [1.5, None, True]], task_id="id-list"),
    lambda: add.apply_async(kwargs={"x": 1, "y": {"nested": ["ü", 2**70]}}, task_id="id-kwargs"),
    lambda: add.apply_async((3, 4), task_id="id-headers", headers={"tenant": "a", "n": 1}),
    lambda: add.apply_async((5, 6), task_id="id-priority", priority=2),
    lambda: add.apply_async((7, 8), task_id="id-queue", queue="low"),
    lambda: on_low.apply_async(task_id="id-low"),
    lambda: add.apply_async(("x" * 3000, {"k": "y" * 2000}), task_id="id-long-repr"),
    # By name, as a web process that never imports the task module calls it
    lambda: app.send_task("tests.add", (1, 2), task_id="name-plain"),
    lambda: app.send_task("tests.add", kwargs={"x": "ü", "y": 2}, task_id="name-kwargs"),
    lambda: app.send_task("tests.add", (5, 6), task_id="name-priority", priority=7),
    lambda: app.send_task("tests.on_low", task_id="name-low", headers={"tenant": "b"}),
]


def _publish_both_ways(
    redis: Any, monkeypatch: pytest.MonkeyPatch, served: list[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The calls made with the kit's direct path, then (Redis emptied) through Celery's own
    ``apply_async``: what Redis holds after each. Every call of the first run must have been
    the kit's, and none of the second, or the comparison would prove nothing."""
    own = [call().id for call in _CALLS]
    assert served == own
    own_messages = raw_messages(redis)
    redis.flushdb()
    monkeypatch.setattr(direct, "ENABLED", False)
    reference = [call().id for call in _CALLS]
    assert reference == own and len(served) == len(own)
    return own_messages, raw_messages(redis)


def test_a_plain_apply_async_writes_byte_for_byte_what_celerys_path_writes(
    redis: Any, monkeypatch: pytest.MonkeyPatch, served: list[str]
) -> None:
    own, reference = _publish_both_ways(redis, monkeypatch, served)

    assert len(own) == len(_CALLS)
    assert own == reference
    message = json.loads(redis.lrange("default\x06\x162", 0, -1)[0])
    assert message["properties"]["reply_to"] == app.thread_oid  # as apply_async sets it
    assert message["headers"]["id"] == "id-priority" and message["properties"]["priority"] == 2


def test_other_publish_receivers_see_celerys_arguments_and_their_changes_are_published(
    redis: Any, monkeypatch: pytest.MonkeyPatch, served: list[str]
) -> None:
    """What the stock OpenTelemetry instrumentation does: inject its context into the
    headers before the publish, end its span after it, for every task."""
    seen: list[tuple[str, str, str]] = []
    after: list[str] = []

    def inject(
        headers: dict[str, Any], properties: dict[str, Any], routing_key: str, **kw: Any
    ) -> None:
        headers["traceparent"] = f"00-{headers['id']:0>32.32}-{len(headers):016x}-01"
        properties["tag"] = "seen"
        seen.append((str(kw["sender"]), routing_key, kw["exchange"]))

    def ended(headers: dict[str, Any], **_: Any) -> None:
        after.append(str(headers["id"]))

    signals.before_task_publish.connect(inject, weak=False)
    signals.after_task_publish.connect(ended, weak=False)
    try:
        own, reference = _publish_both_ways(redis, monkeypatch, served)
    finally:
        signals.before_task_publish.disconnect(inject)
        signals.after_task_publish.disconnect(ended)

    assert own == reference
    assert seen[: len(_CALLS)] == seen[len(_CALLS) :]  # the same arguments both ways
    assert ("tests.add", "low", "") in seen
    assert after == [*served, *served]
    assert all('"tag": "seen"' in raw and '"traceparent": "00-' in raw for _, raw in own)


@pytest.fixture
def sent_events(redis: Any) -> Iterator[list[dict[str, Any]]]:
    """Every ``task-sent`` event published meanwhile, as kombu's envelope with its body decoded."""
    events: list[dict[str, Any]] = []
    pubsub = redis.pubsub()
    pubsub.psubscribe("*celeryev/task.sent")
    eventually(lambda: pubsub.get_message(timeout=0.1) is not None, timeout=5)

    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.05)
            if message is not None and message["type"] == "pmessage":
                envelope = json.loads(message["data"])
                envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
                events.append(envelope)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield events
    stop.set()
    thread.join(timeout=5)
    pubsub.close()


def test_flower_gets_celerys_task_sent_event(
    redis: Any,
    monkeypatch: pytest.MonkeyPatch,
    served: list[str],
    sent_events: list[dict[str, Any]],
) -> None:
    add.apply_async((1, 2), task_id="id-event", queue="low")
    monkeypatch.setattr(direct, "ENABLED", False)
    add.apply_async((1, 2), task_id="id-event", queue="low")
    eventually(lambda: len(sent_events) == 2, timeout=10)
    assert served == ["id-event"]

    own, reference = sent_events
    for varying in (own, reference):
        assert varying["properties"].pop("delivery_tag")
        assert varying["body"].pop("timestamp") > 0
        assert varying["body"].pop("clock") > 0
    assert own == reference
    assert own["body"]["uuid"] == "id-event" and own["body"]["queue"] == "low"
    assert own["body"]["type"] == "task-sent" and own["body"]["pid"] == os.getpid()


@pytest.mark.parametrize(
    "options",
    [
        {"countdown": 0.5},
        {"expires": 60},
        {"link": add.s(1)},
        {"shadow": "tests.add-shadowed"},
        {"time_limit": 30},
        {"serializer": "json"},
    ],
    ids=lambda options: next(iter(options)),
)
def test_any_other_option_takes_celerys_path(
    redis: Any, served: list[str], options: dict[str, Any]
) -> None:
    result = add.apply_async((1, 2), **options)
    assert served == []
    assert result.id and redis.exists("kit:bell:default")


@pytest.mark.parametrize("call", ["apply_async", "send_task"])
def test_a_call_on_celerys_path_is_checked_and_offered_to_the_middleware_once(
    redis: Any, served: list[str], monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    seen: list[str] = []
    offer, check = DurableDelay.before_apply, add.check_arguments

    def offered(self: Any, app: Any, name: str, *rest: Any) -> Any:
        seen.append(f"before_apply {name}")
        return offer(self, app, name, *rest)

    def checked(*args: Any) -> None:
        seen.append("check_arguments")
        check(*args)

    monkeypatch.setattr(DurableDelay, "before_apply", offered)
    monkeypatch.setattr(add, "check_arguments", checked)
    if call == "apply_async":
        result = add.apply_async((1, 2), expires=60)
    else:
        result = app.send_task("tests.add", (1, 2), expires=60)
    assert seen == ["check_arguments", "before_apply tests.add"]
    assert served == [] and [m["headers"]["id"] for m in _waiting(redis)] == [result.id]


def test_send_task_of_a_task_this_process_does_not_have_takes_celerys_path(
    redis: Any, served: list[str]
) -> None:
    result = app.send_task("elsewhere.only", ("a",))
    assert served == []
    (message,) = _waiting(redis)
    assert message["headers"]["id"] == result.id and message["headers"]["task"] == "elsewhere.only"


def test_a_caller_supplied_producer_takes_celerys_path(served: list[str]) -> None:
    with app.producer_or_acquire() as producer:
        result = add.apply_async((1, 2), producer=producer)
    assert served == [] and result.id


def test_wrong_arguments_are_refused_as_celery_refuses_them(redis: Any, served: list[str]) -> None:
    with pytest.raises(TypeError):
        add.apply_async((1, 2, 3))
    with pytest.raises(TypeError):
        add.apply_async({"x": 1})  # args must be a list or a tuple (Celery's message check)
    with pytest.raises(ValidationError):
        add.apply_async((1, 2), priority=12)
    assert served == [] and raw_messages(redis) == []


def test_delay_returns_a_result_handle_a_worker_fills(
    celery_worker: Any, served: list[str]
) -> None:
    result = add.delay(20, 22)
    assert served == [result.id]
    assert result.get(timeout=30) == 42


def test_a_task_published_from_a_running_task_records_its_parent(
    celery_worker: Any, served: list[str]
) -> None:
    """Celery sets the new task's parent and root from the task running in this thread: such
    a publish takes Celery's path."""
    published: dict[str, dict[str, Any]] = {}

    def record(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if sender == "tests.add" and headers:
            published[str(headers["id"])] = dict(headers)

    signals.before_task_publish.connect(record, weak=False)
    try:
        parent = spawn.delay(3)
        child = parent.get(timeout=30)
    finally:
        signals.before_task_publish.disconnect(record)
    assert served == [parent.id]  # the producer's publish only
    assert published[child]["parent_id"] == parent.id
    assert published[child]["root_id"] == parent.id


def test_a_lost_round_trip_is_published_again_through_celerys_path(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def lost(self: Any, key: str, queue: str, payload: str, *args: Any) -> None:
        attempts.append(key)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(Publishing, "publish_plain", lost)
    result = add.apply_async((1, 2))

    assert attempts == ["default\x06\x165"]
    (message,) = _waiting(redis)
    assert message["headers"]["id"] == result.id


def test_threads_publishing_at_once_each_send_their_own_tasks(
    redis: Any, served: list[str]
) -> None:
    """A web server's threads: every task published once, with its own id, and each message
    carries the ``reply_to`` of the thread that sent it (as Celery's path writes it)."""
    start = threading.Barrier(8)
    sent: dict[str, list[str]] = {}

    def publish(n: int) -> None:
        start.wait(timeout=10)
        sent[app.thread_oid] = [add.delay(n, k).id for k in range(50)]

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    messages = _waiting(redis)
    assert len(messages) == 400 and len(set(served)) == 400
    assert len(sent) == 8
    for message in messages:
        assert message["headers"]["id"] in sent[message["properties"]["reply_to"]]


def test_a_forked_child_makes_task_ids_of_its_own(redis: Any) -> None:
    """The ids are made in chunks per thread: a child forked after its parent published must
    not take the rest of its parent's chunk."""
    add.delay(0, 0)  # the parent's chunk is made
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, add.delay(1, 1).id.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 36
    assert add.delay(2, 2).id != child
    assert len({message["headers"]["id"] for message in _waiting(redis)}) == 3


_TRACED_PRODUCER = """
from project.enqueue import direct
from project.telemetry import setup_telemetry, shutdown_telemetry
from tests.support.tasks import add

setup_telemetry("producer")
ids = [add.delay(n, n).id for n in range(3)]
direct.ENABLED = False
ids.append(add.delay(9, 9).id)
print(" ".join(ids))
shutdown_telemetry()
"""


@pytest.mark.e2e
def test_with_telemetry_on_each_task_has_its_producer_span_and_carries_its_context(
    redis: Any, receiver: Any
) -> None:
    """The stock instrumentation's receivers are connected: each task is published inside its
    own producer span, with that span's context in its headers, the direct path (first three)
    as Celery's (the last)."""
    from tests.support.cli import run_python
    from tests.support.otlp import telemetry_env

    done = run_python("-c", _TRACED_PRODUCER, env=telemetry_env(receiver), timeout=60, check=True)
    ids = done.stdout.split()
    spans = receiver.wait_for_spans(
        lambda spans: len([s for s in spans if s.name == "apply_async/tests.add"]) == 4
    )
    producers = {
        s.attributes["messaging.message.id"]: s for s in spans if s.name == "apply_async/tests.add"
    }
    assert sorted(producers) == sorted(ids) and len(ids) == 4
    own, reference = producers[ids[0]], producers[ids[3]]
    assert sorted(own.attributes) == sorted(reference.attributes)
    assert own.attributes["messaging.destination.name"] == "default"
    for message in _waiting(redis):
        span = producers[message["headers"]["id"]]
        assert message["headers"]["traceparent"].split("-")[1:3] == [span.trace_id, span.span_id]
        assert span.kind == reference.kind and span.start_ns > 0


_UNREACHABLE = """
from kombu.exceptions import OperationalError
from tests.support.tasks import add

try:
    add.delay(1, 1)
except OperationalError as exc:
    print(type(exc).__name__)
"""


def test_with_redis_unreachable_a_call_raises_kombus_operational_error() -> None:
    """As Celery's path does, after kombu's retries: one error type for callers to catch."""
    import socket

    from tests.support.cli import run_python

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    done = run_python("-c", _UNREACHABLE, env={"REDIS_URL": url}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OperationalError"]
