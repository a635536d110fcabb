"""Bulk enqueue: thousands of tasks in a few Redis round trips, still traced and de-duplicated.

A loop of ``apply_async`` pays one round trip (an ``LPUSH``, plus the ``task-sent`` event's
``PUBLISH``) per task. kombu 5.7's ``Producer.batch()`` buffers what the Redis channel would
send in a non-transactional pipeline and flushes every ``batch_size`` commands; :func:`enqueue_many`
publishes into it, and everything on the publish path still runs per task:
``before_task_publish``/``after_task_publish`` (the stock OpenTelemetry instrumentation's
producer span and context injection, the kit's priority and publish-time stamp), routing, and
the kit's durable delays (a task with a delay, link, chain or expiry takes ``apply_async``).

A plain task's message is built by :class:`project.enqueue.messages.RouteMessages` (the same
bytes Celery and kombu would write, a fraction of their work). When the only receiver of
``before_task_publish`` is the kit's own, the kit's middleware is called directly, and
``after_task_publish`` is sent only if something receives it. A call pauses the cyclic garbage
collector, and makes a plain task's ``AsyncResult`` when ``BulkResult.results`` is first read.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeAlias

from celery import signals
from celery.canvas import Signature
from celery.result import AsyncResult
from opentelemetry import trace

from project.broker.publish import PublishBatch
from project.enqueue.collector import collection_paused
from project.enqueue.dedup import (
    DEFAULT_UNIQUE_TTL,
    Claim,
    Duplicate,
    ReleasePolicy,
    note_duplicate,
    take_unique_locks,
    unique_headers,
)
from project.enqueue.messages import (
    RouteMessages,
    TaskIds,
    celery_message,
    json_encoder,
    kombu_envelope,
    kombu_json_is_plain,
    prepare_tasks,
)
from project.lifecycle import celery_hooks
from project.lifecycle.celery_hooks import publishing
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Publish

__all__ = ["DEFAULT_BATCH_SIZE", "BulkResult", "Duplicate", "enqueue_many"]

DEFAULT_BATCH_SIZE = 1000  # Redis commands per pipeline flush (kombu's own default)
#: The kit builds plain tasks' messages itself (False: Celery builds every one, the reference
#: the tests compare the kit's messages with).
OWN_MESSAGES = True
#: Options handled by apply_async's full path: delays (durable in the kit), links, chains.
_DELAYED = frozenset({"countdown", "eta", "expires", "retries", "shadow"})
_SLOW_PATH = _DELAYED | {"link", "link_error", "chain", "chord", "group_id", "parent_id", "root_id"}
_IGNORED = frozenset({"headers", "task_id", "subtask_type", "immutable"})
_tracer = trace.get_tracer("project.enqueue.bulk")


#: A published task's handle, or how to make it: (``AsyncResult`` factory, task id).
_Handle: TypeAlias = "AsyncResult | tuple[Callable[[str], AsyncResult], str]"


class BulkResult:
    """What :func:`enqueue_many` published (``results``: their handles, in input order) and the
    duplicates it skipped.

    The handles of plain tasks are made when ``results`` is first read: a caller that wants
    only ``published`` (or ``task_ids``) does not pay for an ``AsyncResult`` per task, about a
    sixth of a plain task's publish.
    """

    def __init__(
        self, results: Iterable[AsyncResult] = (), duplicates: Iterable[Duplicate] = ()
    ) -> None:
        self._handles: list[_Handle] = list(results)
        self._made = True  # every handle in _handles is an AsyncResult
        self.duplicates: list[Duplicate] = list(duplicates)

    def _add(self, handle: _Handle) -> None:
        self._handles.append(handle)
        self._made = self._made and not isinstance(handle, tuple)

    @property
    def results(self) -> list[AsyncResult]:
        if not self._made:
            with collection_paused():  # as many new objects as the call made
                self._handles = [h[0](h[1]) if isinstance(h, tuple) else h for h in self._handles]
            self._made = True
        return self._handles  # all made above

    @property
    def published(self) -> int:
        return len(self._handles)

    @property
    def task_ids(self) -> list[str]:
        """The published tasks' ids, in input order (without making their handles)."""
        return [h[1] if isinstance(h, tuple) else h.id for h in self._handles]

    def __repr__(self) -> str:
        return f"BulkResult(results={self.results!r}, duplicates={self.duplicates!r})"


@dataclass
class _Route:
    """How the tasks of one name and options are published, decided once per call."""

    name: str
    slow: bool  # apply_async's full path
    routed: dict[str, Any] = field(default_factory=dict)
    queue: Any = None
    exchange: str = ""
    routing_key: str = ""
    direct: bool = False  # straight into the queue's list (a direct exchange to its queue)
    messages: RouteMessages | None = None  # the kit's own messages, else Celery's
    before: bool = True  # before_task_publish has receivers
    kit_only: bool = False  # ... and the kit's is the only one
    after: bool = True  # after_task_publish has receivers
    result: Any = None  # (task_id) -> AsyncResult


class _Publisher:
    """Publishes tasks into one kombu Redis publish batch (a non-transactional pipeline).

    Each message is Celery's protocol 2, routed by the kit's rules, with the publish signals'
    work done per task (see the module's docstring). Left out is per-task overhead a bulk
    publish does not need: kombu's ``Producer`` wrapper (each queue is declared once per call),
    the ``task-sent`` event (Flower shows the task once a worker receives it), the per-task
    result-backend subscription (``AsyncResult.get`` subscribes itself), and the binding lookup
    for each message to one of the kit's direct queues. Routing is decided once per task name
    and options within a call: a router that routes by the arguments is not asked again.
    """

    def __init__(self, app: Any, producer: Any, batch_size: int, ids: TaskIds) -> None:
        self.app = app
        self.kit = kit_of(app)
        self.before_publish = self.kit.pipeline.before_publish
        self.producer = producer
        self.channel = producer.channel
        self.batch = self.channel.create_publish_batch(max_size=batch_size)
        self.ids = ids
        self._encode = json_encoder()
        self._own = (
            OWN_MESSAGES
            and isinstance(self.batch, PublishBatch)
            and hasattr(self.batch, "_buffered")
            and kombu_json_is_plain()
        )
        self._declared: set[str] = set()
        self._routes: dict[tuple[str, str | None], _Route] = {}
        self._plain: dict[str, _Route] = {}  # the routes of signatures without options

    def close(self, flush: bool) -> None:
        try:
            if flush:
                self.batch.flush()
            else:
                self.batch.discard()
        finally:
            self.batch.close()

    def route(self, name: str, options: dict[str, Any]) -> _Route:
        """The route of ``name`` with the signature's ``options``, made on first use."""
        own = {k: v for k, v in options.items() if k not in _IGNORED} if options else None
        key = (name, repr(sorted(own.items())) if own else None)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._make_route(name, own or {})
            if key[1] is None:
                self._plain[name] = route
        return route

    def _make_route(self, name: str, own: dict[str, Any]) -> _Route:
        app = self.app
        options = own
        task = app.tasks.get(name)
        if task is not None:  # the task's own queue, priority, limits ...
            options = {
                **{k: v for k, v in task._get_exec_options().items() if v is not None},
                **own,
            }
        if _SLOW_PATH.intersection(k for k, v in options.items() if v):
            return _Route(name, slow=True)
        routed = app.amqp.router.route(options, name, (), {})
        queue = routed.get("queue") or app.amqp.default_queue
        if isinstance(queue, str):
            queue = app.amqp.queues[queue]
        if queue.name not in self._declared:
            self.producer.maybe_declare(queue)
            self._declared.add(queue.name)
        exchange = routed.get("exchange") or queue.exchange.name
        exchange = str(getattr(exchange, "name", exchange))
        routing_key = str(routed.get("routing_key") or queue.routing_key)
        direct = (
            exchange == queue.exchange.name
            and routing_key == queue.routing_key
            and queue.exchange.type == "direct"
        )
        route = _Route(name, False, routed, queue, exchange, routing_key, direct)
        before = signals.before_task_publish._live_receivers(name)
        route.before = bool(before)
        route.kit_only = before == [celery_hooks._on_before_publish]
        route.after = bool(signals.after_task_publish._live_receivers(name))
        expiring = queue.name in (getattr(self.channel, "_expires", None) or {})
        if self._own and direct and not expiring and task is not None:
            route.messages = RouteMessages(
                app, self.channel, name, routed, queue.name, self._encode, self.ids
            )
        if task is not None:
            route.result = partial(app.AsyncResult, backend=task.backend, task_name=name)
        return route

    def publish(
        self,
        signature: Signature,
        task_id: str,
        claim: Claim | None,
        policy: ReleasePolicy,
        frozen: AsyncResult | None = None,
    ) -> _Handle:
        """Publish one task; its result handle (``frozen``, if it has one already)."""
        options = signature["options"]
        if options or (route := self._plain.get(signature["task"])) is None:
            route = self.route(signature["task"], options)
        extra = options.get("headers")
        if claim is not None:
            extra = {**(extra or {}), **unique_headers(claim.key, policy)}
        if route.slow:
            self.batch.flush()  # keep the order: what was buffered goes first
            return signature.apply_async(task_id=task_id, headers=dict(extra or {}))
        args, kwargs = tuple(signature["args"]), dict(signature["kwargs"])
        messages = route.messages
        if messages is None:
            self._publish_celerys(route, task_id, args, kwargs, extra)
            return frozen if frozen is not None else (route.result, task_id)
        headers, properties, body = messages.message(task_id, args, kwargs)
        if extra:
            headers.update(extra)
        if route.kit_only:  # what the kit's receiver would do, without the signal
            self.before_publish(Publish(route.name, headers, properties, route.routing_key))
        else:
            self._before(route, headers, properties, body)
        key, payload = messages.encode(headers, properties, body)
        self.batch.push(key, messages.queue, payload)
        if route.after:
            self._after(route, headers, body)
        return frozen if frozen is not None else (route.result, task_id)

    @staticmethod
    def _after(route: _Route, headers: dict[str, Any], body: Any) -> None:
        """``after_task_publish`` with Celery's arguments: the stock instrumentation reads the
        task id from ``headers`` to end the task's producer span (without them it never did)."""
        signals.after_task_publish.send(
            sender=route.name,
            body=body,
            headers=headers,
            exchange=route.exchange,
            routing_key=route.routing_key,
        )

    def _before(
        self,
        route: _Route,
        headers: dict[str, Any],
        properties: dict[str, Any],
        body: Any,
        direct: bool = True,
    ) -> None:
        """``before_task_publish``; with the kit's receiver alone (and ``direct``), the kit's
        middleware, which is all that receiver would call."""
        if direct and route.kit_only:
            self.kit.pipeline.before_publish(
                Publish(route.name, headers, properties, route.routing_key)
            )
        elif route.before:
            with publishing(self.kit):  # the kit's middleware stamp and count it
                signals.before_task_publish.send(
                    sender=route.name,
                    body=body,
                    exchange=route.exchange,
                    routing_key=route.routing_key,
                    headers=headers,
                    properties=properties,
                    declare=[],
                    retry_policy=None,
                )

    def _publish_celerys(
        self,
        route: _Route,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        extra: dict[str, Any] | None,
    ) -> None:
        """The message as Celery builds it, kombu's envelope, ``PublishBatch.publish`` and both
        signals sent: a route :class:`RouteMessages` does not serve, or the reference."""
        headers, properties, body = celery_message(
            self.app, route.name, task_id, args, kwargs, route.routed
        )
        headers.update(extra or {})
        self._before(route, headers, properties, body, direct=False)
        envelope = kombu_envelope(self.channel, headers, properties, body)
        if route.direct:
            self.batch.publish(envelope, exchange="", routing_key=route.queue.name)
        else:
            self.batch.publish(envelope, exchange=route.exchange, routing_key=route.routing_key)
        self._after(route, headers, body)


@collection_paused()
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
    ids = TaskIds()
    prepared = prepare_tasks(signatures, unique, unique_ttl, ids)
    if not prepared:
        return BulkResult()
    app = prepared[0][0].app
    client = kit_of(app).redis
    outcome = BulkResult()
    with _tracer.start_as_current_span("enqueue_many", kind=trace.SpanKind.PRODUCER) as span:
        locks = take_unique_locks(client, [claim for _, _, claim, _ in prepared])
        outcome.duplicates = locks.duplicates
        refused = {duplicate.index for duplicate in locks.duplicates}
        for duplicate in locks.duplicates:
            name = prepared[duplicate.index][0].task
            note_duplicate(span, name, duplicate.holder, {"task.index": duplicate.index})
        try:
            with app.producer_or_acquire() as producer:
                publisher = _Publisher(app, producer, batch_size, ids)
                flushed = False
                try:
                    publish, handles = publisher.publish, outcome._handles
                    for index, (signature, task_id, claim, frozen) in enumerate(prepared):
                        if not refused or index not in refused:
                            handles.append(publish(signature, task_id, claim, policy, frozen))
                    outcome._made = False
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
