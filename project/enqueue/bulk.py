"""Bulk enqueue: thousands of tasks in a few Redis round trips, still traced and de-duplicated.

A loop of ``apply_async`` pays one round trip (an ``LPUSH``, plus the ``task-sent`` event's
``PUBLISH``) per task. kombu 5.7's ``Producer.batch()`` buffers what the Redis channel would
send in a non-transactional pipeline and flushes every ``batch_size`` commands; :func:`enqueue_many`
publishes through it with Celery's ordinary ``apply_async``, so everything on the publish path
still runs per task: ``before_task_publish``/``after_task_publish`` (the stock OpenTelemetry
instrumentation's producer span and context injection, the kit's priority and publish-time
stamp), routing, and the kit's durable delays (a long countdown is stored, not batched).

De-duplication: a signature made with ``project.workflows.canvas.step(..., unique="key")`` (or every
signature, with ``unique=True``, under :func:`project.enqueue.dedup.unique_key`) is published only
if its ``kit:unique:<key>`` lock was free. All the locks are taken with one pipelined ``SET NX``
batch (:func:`project.enqueue.dedup.take_unique_locks`); duplicates (also two equal keys within
the same call) are skipped and reported.

Delivery: a failed flush raises kombu's ``BatchPublishError``: the tasks of that flush may or
may not be in Redis. The locks of every task in the call are released first (at worst a
retried call publishes a task twice; without the release it would be refused for the TTL).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import signals
from celery.canvas import Signature
from celery.result import AsyncResult
from kombu import serialization
from kombu.utils.uuid import uuid
from opentelemetry import trace

from project.enqueue.dedup import (
    DEFAULT_UNIQUE_TTL,
    Claim,
    Duplicate,
    ReleasePolicy,
    _queue_of,
    note_duplicate,
    take_unique_locks,
    unique_claim,
    unique_headers,
    unique_key,
)
from project.lifecycle.celery_hooks import publishing
from project.lifecycle.kit import kit_of

__all__ = ["DEFAULT_BATCH_SIZE", "BulkResult", "Duplicate", "enqueue_many"]

DEFAULT_BATCH_SIZE = 1000  # Redis commands per pipeline flush (kombu's own default)
_REPR_MAX = 1024  # Celery's argsrepr_maxsize
#: Options handled by apply_async's full path: delays (durable in the kit), links, chains.
_SLOW_PATH = frozenset(
    {
        "countdown",
        "eta",
        "link",
        "link_error",
        "chain",
        "chord",
        "group_id",
        "expires",
        "shadow",
        "parent_id",
        "root_id",
        "retries",
    }
)
_IGNORED = frozenset({"headers", "task_id", "subtask_type", "immutable"})
_tracer = trace.get_tracer("project.enqueue.bulk")


@dataclass
class BulkResult:
    results: list[AsyncResult] = field(default_factory=list)  # the published, in input order
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def published(self) -> int:
        return len(self.results)


def _claim(signature: Signature, unique: bool, ttl: float) -> Claim | None:
    """The step's own unique key (``step(unique=...)``), else, with ``unique``, the default one."""
    claim = unique_claim(signature)
    if claim is None and unique:
        key = unique_key(signature.task, _queue_of(signature), signature.args, signature.kwargs)
        claim = Claim(key, str(signature.id), ttl)
    return claim


class _Publisher:
    """Publishes tasks into one kombu Redis publish batch (a non-transactional pipeline).

    Celery builds each message (``amqp.create_task_message``) and routes it by the kit's rules,
    and the ``before_task_publish``/``after_task_publish`` signals fire around each one with
    Celery's arguments: the stock OpenTelemetry instrumentation's producer span and context
    injection, and the kit's priority and publish-time stamp, apply as to ``apply_async``. What
    a bulk publish leaves out is per-task overhead it does not need: kombu's ``Producer``
    wrapper (entity copies, declarations: each queue is declared once per call), the
    ``task-sent`` event (Flower shows the task once a worker receives it), the per-task
    result-backend subscription (``AsyncResult.get`` subscribes itself), and the exchange's
    binding lookup for each message to one of the kit's direct queues. A signature with a
    delay, link, chain or expiry takes ``apply_async`` (the kit's durable delays included).
    """

    def __init__(self, app: Any, producer: Any, batch_size: int) -> None:
        self.app = app
        self.producer = producer
        self.channel = producer.channel
        self.batch = self.channel.create_publish_batch(max_size=batch_size)
        self._declared: set[str] = set()
        self._routes: dict[tuple[str, str], dict[str, Any]] = {}

    def close(self, flush: bool) -> None:
        try:
            if flush:
                self.batch.flush()
            else:
                self.batch.discard()
        finally:
            self.batch.close()

    def publish(
        self, signature: Signature, claim: Claim | None, policy: ReleasePolicy
    ) -> AsyncResult | None:
        """Publish one task; its result handle only when it took ``apply_async``."""
        app = self.app
        headers = dict(signature.options.get("headers") or {})
        if claim is not None:
            headers.update(unique_headers(claim.key, policy))
        options = {k: v for k, v in signature.options.items() if k not in _IGNORED}
        task = app.tasks.get(signature.task)
        if task is not None:  # the task's own queue, priority, limits ...
            options = {
                **{k: v for k, v in task._get_exec_options().items() if v is not None},
                **options,
            }
        if _SLOW_PATH.intersection(k for k, v in options.items() if v):
            self.batch.flush()  # keep the order: what was buffered goes first
            return signature.apply_async(headers=headers)
        task_id, name = str(signature.id), str(signature.task)
        args, kwargs = tuple(signature.args), dict(signature.kwargs)
        # Routing is decided once per task name and options within a call: a router that
        # routes by the arguments is not consulted again for each task.
        route_key = (name, repr(sorted(options.items())))
        routed = self._routes.get(route_key)
        if routed is None:
            routed = self._routes[route_key] = app.amqp.router.route(options, name, args, kwargs)
        message = app.amqp.create_task_message(
            task_id,
            name,
            args,
            kwargs,
            time_limit=routed.get("time_limit"),
            soft_time_limit=routed.get("soft_time_limit"),
            create_sent_event=False,
            root_id=task_id,
            ignore_result=bool(routed.get("ignore_result", False)),
            argsrepr=_short_repr(args),
            kwargsrepr=_short_repr(kwargs),
        )
        queue = routed.get("queue") or app.amqp.default_queue
        if isinstance(queue, str):
            queue = app.amqp.queues[queue]
        if queue.name not in self._declared:
            self.producer.maybe_declare(queue)
            self._declared.add(queue.name)
        exchange = routed.get("exchange") or queue.exchange.name
        exchange = getattr(exchange, "name", exchange)
        routing_key = routed.get("routing_key") or queue.routing_key
        headers = {**message.headers, **headers}
        properties = {**message.properties, "delivery_mode": 2}
        if routed.get("priority") is not None:
            properties["priority"] = routed["priority"]
        body = message.body
        with publishing(kit_of(app)):  # the kit's middleware stamp and count it
            signals.before_task_publish.send(
                sender=name,
                body=body,
                exchange=exchange,
                routing_key=routing_key,
                headers=headers,
                properties=properties,
                declare=[],
                retry_policy=None,
            )
        content_type, content_encoding, data = serialization.dumps(body, serializer="json")
        prepared = self.channel.prepare_message(
            data,
            properties.pop("priority", None),
            content_type,
            content_encoding,
            headers,
            properties,
        )
        if (
            exchange == queue.exchange.name
            and routing_key == queue.routing_key
            and queue.exchange.type == "direct"
        ):
            # Straight into the queue's list: kombu would otherwise read the exchange's
            # bindings (SMEMBERS, a round trip) for every message to find the same queue.
            self.batch.publish(prepared, exchange="", routing_key=queue.name)
        else:
            self.batch.publish(prepared, exchange=exchange, routing_key=routing_key)
        signals.after_task_publish.send(
            sender=name, body=body, exchange=exchange, routing_key=routing_key
        )
        return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


def _freeze(signature: Signature) -> AsyncResult:
    """A plain task signature only needs its id fixed (a fifth of the bulk time went to
    Celery's general ``freeze``); chains, groups and chords take Celery's own path."""
    if type(signature) is not Signature:
        return signature.freeze()
    task_id = signature.options.get("task_id") or uuid()
    signature.options["task_id"] = task_id
    return signature.AsyncResult(task_id)


def enqueue_many(
    signatures: Iterable[Signature],
    *,
    unique: bool = False,
    unique_ttl: float = DEFAULT_UNIQUE_TTL,
    policy: ReleasePolicy | str = ReleasePolicy.ON_SUCCESS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> BulkResult:
    """Publish every signature in pipelined batches; duplicates are skipped and reported."""
    policy = ReleasePolicy(policy)
    prepared: list[tuple[Signature, Claim | None]] = []
    frozen: list[AsyncResult] = []
    for signature in signatures:
        signature = signature.clone()
        frozen.append(_freeze(signature))
        prepared.append((signature, _claim(signature, unique, unique_ttl)))
    if not prepared:
        return BulkResult()
    app = prepared[0][0].app
    client = kit_of(app).redis
    outcome = BulkResult()
    with _tracer.start_as_current_span("enqueue_many", kind=trace.SpanKind.PRODUCER) as span:
        locks = take_unique_locks(client, [claim for _, claim in prepared])
        outcome.duplicates = locks.duplicates
        refused = {duplicate.index for duplicate in locks.duplicates}
        for duplicate in locks.duplicates:
            name = prepared[duplicate.index][0].task
            note_duplicate(span, name, duplicate.holder, {"task.index": duplicate.index})
        try:
            with app.producer_or_acquire() as producer:
                publisher = _Publisher(app, producer, batch_size)
                flushed = False
                try:
                    for index, ((signature, claim), result) in enumerate(
                        zip(prepared, frozen, strict=True)
                    ):
                        if index not in refused:
                            outcome.results.append(
                                publisher.publish(signature, claim, policy) or result
                            )
                    flushed = True
                finally:
                    publisher.close(flush=flushed)
        except BaseException:
            locks.release()
            raise
        span.set_attributes(
            {"task.count": outcome.published, "task.duplicates": len(outcome.duplicates)}
        )
    return outcome
