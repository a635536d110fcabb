"""enqueue_many: pipelined publishing that still traces, stamps, routes and de-duplicates."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import pytest
from celery import signals
from celery.result import AsyncResult
from kombu.exceptions import BatchPublishError, EncodeError
from kombu.utils import json as kombu_json

from project import app
from project.broker.queues import PUBLISHED_AT_HEADER, queue_keys
from project.enqueue import bulk, messages
from project.enqueue.bulk import enqueue_many
from project.enqueue.messages import TaskIds, json_encoder
from project.workflows.canvas import step
from tests.support.cli import run_python
from tests.support.messages import raw_messages
from tests.support.otlp import OTLPReceiver, telemetry_env
from tests.support.tasks import add, on_low


def _messages(redis: Any, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for key in queue_keys(queue) for raw in redis.lrange(key, 0, -1)]


def test_every_task_is_published_with_the_kits_headers_in_few_round_trips(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.client

    published: list[str] = []
    flushes: list[list[tuple[str, int]]] = []  # per round trip: (command, its arguments)
    execute = redis.client.Pipeline.execute

    def counted(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        flushes.append([(str(command[0]), len(command) - 1) for command, _ in pipe.command_stack])
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)

    def record(headers: dict[str, Any] | None = None, **_: Any) -> None:
        published.append(str((headers or {}).get("id")))

    signals.before_task_publish.connect(record, weak=False)
    try:
        outcome = enqueue_many([add.s(n, n) for n in range(2000)] + [on_low.s()], batch_size=500)
    finally:
        signals.before_task_publish.disconnect(record)

    assert outcome.published == 2001 and not outcome.duplicates
    assert published == [r.id for r in outcome.results]  # the publish signals ran per task
    # Pipelined: flushed every 500 tasks, each flush one LPUSH of its 500 messages, then the
    # queue's bell for up to 32 idle workers: a handful of round trips (four full flushes, the
    # last task, kombu's one-off queue declarations), not 2001.
    full = [("LPUSH", 1 + 500), ("LPUSH", 1 + 32)]
    assert flushes.count(full) == 4 and len(flushes) <= 12
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    default = _messages(client, "default")
    assert len(default) == 2000 and len(_messages(client, "low")) == 1
    headers = default[0]["headers"]
    assert PUBLISHED_AT_HEADER in headers and default[0]["properties"]["priority"] == 5


def test_duplicates_are_skipped_and_reported_with_their_holder(redis: Any) -> None:
    first = enqueue_many([add.s(1, 1)], unique=True)

    again = enqueue_many(
        [add.s(1, 1), add.s(2, 2), step("tests.noop", unique="k"), step("tests.noop", unique="k")],
        unique=True,
    )

    assert again.published == 2
    assert [(d.index, d.holder) for d in again.duplicates] == [
        (0, first.results[0].id),
        (3, again.results[1].id),
    ]
    assert redis.get("kit:unique:k") == again.results[1].id


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_worker_runs_what_was_published_and_frees_unique_locks(
    start_worker: Any, redis: Any
) -> None:
    start_worker(concurrency=2)

    outcome = enqueue_many([add.s(n, 1) for n in range(50)], unique=True)

    assert [r.get(timeout=60) for r in outcome.results] == [n + 1 for n in range(50)]
    assert app.AsyncResult(outcome.results[0].id).state == "SUCCESS"
    assert not redis.keys("kit:unique:*")  # released on success, by the headers


# -- the kit's own messages ------------------------------------------------------------------


def _signatures() -> list[Any]:
    """Plain tasks of every shape the kit's builder serves, each with a fixed id."""
    return [
        add.s(1, 2).set(task_id="id-plain"),
        add.s('é\n"', [1.5, None, True]).set(task_id="id-text"),
        add.si(x=1, y={"nested": ["ü", 2**70]}).set(task_id="id-kwargs"),
        add.s(3, 4).set(task_id="id-headers", headers={"tenant": "a", "n": 1}),
        add.s(5, 6).set(task_id="id-priority", priority=2),
        add.s(7, 8).set(task_id="id-queue", queue="low"),
        on_low.s().set(task_id="id-low"),
        step("tests.noop", unique="same-key").set(task_id="id-step"),
        add.s("x" * 3000, 0).set(task_id="id-long-repr"),
    ]


def _publish_both_ways(redis: Any, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    """The same tasks published by the kit's builder, then (Redis emptied) by Celery's own
    ``create_task_message`` and kombu's envelope with every signal sent: both as Redis holds
    them. The kit's run must have built its messages itself, or the test would prove nothing."""
    built: list[str] = []
    encode = messages.RouteMessages.encode

    def spy(self: Any, headers: dict[str, Any], *args: Any) -> Any:
        built.append(str(headers["id"]))
        return encode(self, headers, *args)

    monkeypatch.setattr(messages.RouteMessages, "encode", spy)
    own = enqueue_many(_signatures(), **options)
    own_messages = raw_messages(redis)
    assert built == own.task_ids  # every one of them by the kit's builder
    redis.flushdb()
    monkeypatch.setattr(bulk, "OWN_MESSAGES", False)
    reference = enqueue_many(_signatures(), **options)
    assert len(built) == own.published  # ... and none of these
    assert reference.task_ids == own.task_ids
    return own_messages, raw_messages(redis)


def test_the_kits_messages_are_byte_for_byte_celerys(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also the proof that calling the kit's middleware instead of sending
    ``before_task_publish`` (its only receiver is the kit's) changes nothing."""
    own, reference = _publish_both_ways(redis, monkeypatch)

    assert len(own) == len(_signatures())
    assert own == reference
    (raw,) = redis.lrange("default\x06\x162", 0, -1)  # the one with priority 2
    message = json.loads(raw)
    assert message["headers"]["id"] == "id-priority" and message["properties"]["priority"] == 2
    assert json.loads(base64.b64decode(message["body"])) == [
        [5, 6],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_unique_tasks_messages_are_celerys_too(redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    own, reference = _publish_both_ways(redis, monkeypatch, unique=True)
    assert own == reference
    assert all('"kit_unique_key": ' in raw for _, raw in own)


def test_other_publish_receivers_run_per_task_and_their_changes_are_published(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the stock OpenTelemetry instrumentation does (a receiver that injects its context
    into the headers, and an after_task_publish one that ends its span), for every task."""
    after: list[str] = []

    def inject(headers: dict[str, Any], properties: dict[str, Any], **_: Any) -> None:
        headers["traceparent"] = f"00-{headers['id']:0>32.32}-{len(headers):016x}-01"
        properties["tag"] = "seen"  # (and the kit's envelope is no longer the usual one)

    def ended(body: Any = None, **_: Any) -> None:
        after.append(str(body[0]))

    signals.before_task_publish.connect(inject, weak=False)
    signals.after_task_publish.connect(ended, weak=False)
    try:
        own, reference = _publish_both_ways(redis, monkeypatch)
    finally:
        signals.before_task_publish.disconnect(inject)
        signals.after_task_publish.disconnect(ended)

    assert own == reference
    assert len(after) == 2 * len(own)  # both runs, once per task
    for key, _ in own:
        for raw in redis.lrange(key, 0, -1):
            message = json.loads(raw)
            assert message["headers"]["traceparent"][3:35].endswith(message["headers"]["id"])
            assert message["properties"]["tag"] == "seen"


def test_a_task_with_a_delay_goes_through_apply_async_in_order(redis: Any) -> None:
    outcome = enqueue_many([add.s(1, 1), add.s(2, 2).set(countdown=3600), add.s(3, 3)])

    assert outcome.published == 3
    assert [r.id for r in outcome.results] == outcome.task_ids
    waiting = [json.loads(raw)["headers"]["id"] for raw in redis.lrange("default\x06\x165", 0, -1)]
    assert sorted(waiting) == sorted([outcome.task_ids[0], outcome.task_ids[2]])
    assert outcome.task_ids[1] not in waiting  # the durable delay holds it


def test_each_queue_is_served_in_the_order_of_the_call(redis: Any) -> None:
    """Runs of messages to one list leave as one LPUSH each, flushes cut through them and
    tasks of another queue come in between: a worker, which pops from the right, still meets
    each queue's tasks in the order they were given."""
    signatures = [
        *[add.s(n, 0) for n in range(7)],
        on_low.s(),
        add.s(7, 0),
        add.s(8, 0).set(queue="low"),
        add.s(9, 0).set(headers={"tenant": "a"}),
        *[add.s(n, 0) for n in range(10, 16)],
        on_low.s(),
    ]
    outcome = enqueue_many(signatures, batch_size=4)

    def served(key: str) -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in reversed(redis.lrange(key, 0, -1))]

    ids = outcome.task_ids
    assert served("default\x06\x165") == [ids[i] for i in (*range(7), 8, *range(10, 17))]
    assert served("low\x06\x165") == [ids[i] for i in (7, 9, 17)]


def test_a_failed_flush_raises_batch_publish_error_and_frees_the_locks(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.client import Pipeline
    from redis.exceptions import ConnectionError as LostConnection

    def lost(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        if any(command[0] == "LPUSH" for command, _ in pipe.command_stack):
            raise LostConnection("lost")
        return execute(pipe, *args, **kwargs)

    execute = Pipeline.execute
    monkeypatch.setattr(Pipeline, "execute", lost)
    with pytest.raises(BatchPublishError):
        enqueue_many([add.s(n, n) for n in range(20)], unique=True, batch_size=5)
    monkeypatch.undo()
    assert not redis.keys("kit:unique:*")  # released for a retry


def test_result_handles_are_made_when_asked_for(redis: Any) -> None:
    outcome = enqueue_many([add.s(n, 1) for n in range(3)] + [add.s(9, 9).set(task_id="mine")])

    assert outcome.published == 4 and outcome.task_ids[3] == "mine"
    handles = outcome.results
    assert all(isinstance(h, AsyncResult) for h in handles)
    assert [h.id for h in handles] == outcome.task_ids and handles is outcome.results
    assert handles[0].backend is add.backend and handles[0].state == "PENDING"


def test_the_collector_is_back_as_it_was_after_a_call(redis: Any) -> None:
    import gc

    enqueue_many([add.s(1, 1)])
    assert gc.isenabled()
    gc.disable()
    try:
        enqueue_many([add.s(1, 1)])
        assert not gc.isenabled()  # not turned on behind the caller's back
    finally:
        gc.enable()
    with pytest.raises(EncodeError):
        enqueue_many([add.s(object(), 1)])  # not JSON: the call fails ...
    assert gc.isenabled()  # ... and collection is on again


@pytest.mark.parametrize("own", [True, False])
def test_arguments_json_cannot_encode_are_kombus_encode_error(
    redis: Any, monkeypatch: pytest.MonkeyPatch, own: bool
) -> None:
    monkeypatch.setattr(bulk, "OWN_MESSAGES", own)
    with pytest.raises(EncodeError, match="not JSON serializable"):
        enqueue_many([add.s(1, 1), add.s({1, 2}, 1)], unique=True)
    assert not redis.keys("kit:unique:*") and not redis.keys("default*")


def test_task_ids_are_uuid4_strings() -> None:
    ids = TaskIds(chunk=7)
    made = [ids() for _ in range(50)]

    assert len(set(made)) == 50
    for task_id in made:
        parsed = uuid.UUID(task_id)
        assert str(parsed) == task_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    with pytest.raises(ValueError, match="chunk"):
        TaskIds(chunk=0)


@pytest.mark.parametrize(
    "value",
    [
        ([1, "é", None, True, 1.5, float("nan"), 2**80], {"k": {"z": [], "a": ()}}, {}),
        {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "id": uuid.UUID(int=1), "b": b"\xff"},
        {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    ],
)
def test_the_reused_encoder_writes_what_kombu_writes(value: Any) -> None:
    encode = json_encoder()
    assert encode(value) == kombu_json.dumps(value) == encode(value)


def test_the_reused_encoder_recovers_from_a_value_it_cannot_encode() -> None:
    encode = json_encoder()
    inner: list[Any] = [1]
    with pytest.raises(TypeError):
        encode([inner, object()])
    assert encode([inner, inner]) == "[[1], [1]]"  # not taken for a circular reference
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        encode(circular)
    assert encode({"a": inner}) == '{"a": [1]}'


_TRACED_PRODUCER = """
from project.enqueue.bulk import enqueue_many
from project.telemetry import setup_telemetry, shutdown_telemetry
from tests.support.tasks import add

setup_telemetry("producer")
print(" ".join(enqueue_many([add.s(n, n) for n in range(5)]).task_ids))
shutdown_telemetry()
"""


@pytest.mark.e2e
def test_with_telemetry_on_each_task_has_its_producer_span_and_carries_its_context(
    redis: Any,
) -> None:
    """The stock instrumentation's receivers are connected: every task's message is published
    through the signals, inside its own producer span, with that span's context injected."""
    receiver = OTLPReceiver().start()
    try:
        env = telemetry_env(receiver)
        done = run_python("-c", _TRACED_PRODUCER, env=env, timeout=60, check=True)
        ids = done.stdout.split()
        spans = receiver.wait_for_spans(
            lambda spans: len([s for s in spans if s.name == "apply_async/tests.add"]) == 5
        )
    finally:
        receiver.stop()
    producers = {
        s.attributes["messaging.message.id"]: s for s in spans if s.name == "apply_async/tests.add"
    }
    assert sorted(producers) == sorted(ids) and len(ids) == 5
    (bulk_span,) = [s for s in spans if s.name == "enqueue_many"]
    waiting = [json.loads(raw) for raw in redis.lrange("default\x06\x165", 0, -1)]
    assert len(waiting) == 5
    for message in waiting:
        span = producers[message["headers"]["id"]]
        assert span.parent_id == bulk_span.span_id
        assert message["headers"]["traceparent"].split("-")[1:3] == [span.trace_id, span.span_id]


def test_overlapping_calls_leave_the_garbage_collector_as_they_found_it(redis: Any) -> None:
    """Each call pauses the cyclic collector; calls from several threads at once must not
    leave it paused (the last one to end resumes it)."""
    import gc
    import threading

    assert gc.isenabled()
    started = threading.Barrier(4)
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            started.wait(timeout=10)
            for _ in range(5):
                enqueue_many([add.s(n, n) for n in range(200)])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert gc.isenabled()
