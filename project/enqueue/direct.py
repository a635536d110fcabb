"""A plain task's ``apply_async``/``delay``, published by the kit: what a web request pays.

Celery's ``apply_async`` on the kit's app runs some 1,400 Python calls for one task: its options
merged twice, ``create_task_message``, kombu's ``Producer.publish`` with its declarations and
retry wrapper, and Flower's ``task-sent`` event through a second ``Producer.publish``; about
1 ms of CPU for one round trip to Redis. :meth:`DirectPublisher.publish` does what that path
does for a *plain* task, with the message built by
:class:`~project.enqueue.messages.RouteMessages` (byte for byte the message ``apply_async``
writes: ``tests/project/test_direct_publish.py`` compares them) and the message, its queue's
bell and the ``task-sent`` event sent in one pipelined round trip.

Kept from Celery's path, per call: the argument check of ``typing``, the task's and the
caller's options merged as Celery merges them and the router asked (a router may route by the
arguments), ``before_task_publish``/``after_task_publish`` (the kit's middleware called
directly when the kit's receiver is the only one; any other receiver, such as the stock
OpenTelemetry instrumentation's, gets Celery's arguments), the result backend's
``on_task_call``, and the ``task-sent`` event with Celery's fields, clock and headers.

Plain means: no option but ``queue``, ``priority`` and ``headers`` (a delay, expiry, link,
chain, producer or shadow takes Celery's path, and so the kit's durable delays), not called
from inside a running task (whose id Celery records as the new task's parent), a direct queue
without a message TTL, JSON as Celery and kombu ship it, and no ``task_sent`` receiver (a
signal Celery deprecated). Anything else, :meth:`~DirectPublisher.publish` returns None and the
caller takes Celery's path. So does a publish whose round trip fails on a connection error:
Celery then publishes it again with kombu's retries, as
:class:`~project.lifecycle.celery_hooks.KitAMQP` does (at least once, like any retried
publish; the publish hooks run again for it).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from celery import Task, signals
from celery.events import Event
from celery.result import AsyncResult
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset

from project.enqueue.messages import RouteMessages, TaskIds, json_encoder, kombu_json_is_plain
from project.lifecycle import celery_hooks
from project.lifecycle.kit import Kit
from project.lifecycle.middleware import Publish

__all__ = ["ENABLED", "PLAIN_OPTIONS", "DirectPublisher", "direct_publisher"]

#: False: every ``apply_async`` takes Celery's path (the reference the tests compare with).
ENABLED = True
#: The ``apply_async`` options a direct publish serves (any other takes Celery's path).
PLAIN_OPTIONS = frozenset({"queue", "priority", "headers"})
#: Routed options whose values the direct path knows how to write (Celery's exec options).
_ROUTED = frozenset(
    {"queue", "priority", "routing_key", "exchange", "serializer", "delivery_mode"}
    | {"compression", "immediate", "mandatory", "headers"}
)
_publishers: weakref.WeakKeyDictionary[Kit, DirectPublisher] = weakref.WeakKeyDictionary()
_made = threading.Lock()


def _celerys_repr(app: Any) -> Any:
    """``argsrepr``/``kwargsrepr`` as ``apply_async`` writes them (Celery's ``saferepr``)."""
    limit, levels = app.amqp.argsrepr_maxsize, app.conf.task_repr_maxlevels

    def represent(value: Any) -> str:
        return str(saferepr(value, limit, maxlevels=levels))

    return represent


def direct_publisher(kit: Kit) -> DirectPublisher:
    """The app's direct publisher, made on first use."""
    publisher = _publishers.get(kit)
    if publisher is None:
        with _made:
            publisher = _publishers.get(kit)
            if publisher is None:
                publisher = _publishers[kit] = DirectPublisher(kit)
    return publisher


class _Route:
    """How one task name goes to one routed destination, from one thread (its ``reply_to``)."""

    __slots__ = ("declared", "ignore_result", "messages", "queue", "topics")

    def __init__(self, messages: RouteMessages, queue: Any, ignore_result: Any) -> None:
        self.messages = messages
        self.queue = queue
        self.ignore_result = ignore_result
        self.declared: set[int] = set()  # ids of the connections the queue is declared on
        self.topics: list[str] | None = None  # where the task-sent event is published


class _ThreadState(threading.local):
    """Per thread: Celery's ``reply_to`` is the thread's oid, so each thread has its routes;
    and its own ids (made in chunks, so not shared). Made again after a fork (``pid``): a
    child must not reuse its parent's buffered random ids."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ids = TaskIds(chunk=64)
        # The reused encoder keeps its circular-reference marks between calls: one per thread.
        self.encode = json_encoder()
        self.routes: dict[tuple[Any, ...], _Route] = {}


class DirectPublisher:
    """Publishes plain tasks of one kit app (module docstring)."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        self.app = kit.app
        self._state = _ThreadState()

    def _thread(self) -> _ThreadState:
        state = self._state
        if state.pid != os.getpid():
            self._state = state = _ThreadState()
        return state

    def publish(
        self,
        task: Any,
        args: Any,
        kwargs: Any,
        task_id: str | None,
        options: dict[str, Any],
        by_name: bool = False,
    ) -> AsyncResult | None:
        """Publish ``task`` as ``apply_async`` (``by_name``: ``app.send_task``) would; None if
        it is not plain (then nothing was sent)."""
        app = self.app
        if options and not PLAIN_OPTIONS.issuperset(options):
            return None
        if signals.task_sent.receivers or app.current_worker_task is not None:
            return None
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        if by_name:  # send_task: the task's options under the caller's, no argument check
            defaults = {k: v for k, v in task._get_exec_options().items() if v is not None}
            merged = dict(defaults, **options)
        else:  # Task.apply_async
            if (
                type(task).shadow_name is not Task.shadow_name
                or getattr(task, "_dump_pydantic_arguments", None) is not None
            ):
                return None
            limits = task.soft_time_limit, task.time_limit
            if limits[0] and limits[1] and limits[0] > limits[1]:
                raise ValueError("soft_time_limit must be less than or equal to time_limit")
            header = getattr(task, "__header__", None) if task.typing else None
            if header is not None:
                header(*args, **kwargs)
            merged = dict(task._get_exec_options(), **options)
            merged.setdefault("ignore_result", task.ignore_result)
        if merged.pop("expires", None) is not None:
            return None
        time_limit = merged.pop("time_limit", None)
        soft_time_limit = merged.pop("soft_time_limit", None)
        ignore_result = merged.pop("ignore_result", None)  # send_task's default is None
        routed = app.amqp.router.route(merged, task.name, args, kwargs, task)
        route = self._route(task, routed, time_limit, soft_time_limit, ignore_result)
        if route is None:
            return None
        if not isinstance(args, list | tuple):
            raise TypeError("task args must be a list or tuple")
        state = self._thread()
        task_id = task_id or state.ids()
        with app.producer_or_acquire() as producer:
            try:
                channel = producer.channel
                # Not the kit's channel: kombu's own transport after a failover to another
                # URL of the broker's list (kombu picks that URL's transport by its scheme).
                if getattr(channel, "publish_plain", None) is None:
                    return None
                self._send(producer, channel, route, task_id, args, kwargs, routed.get("headers"))
            except producer.connection.connection_errors:
                return None  # Celery's path publishes it again, with kombu's retries
        result = (app.AsyncResult if by_name else task.AsyncResult)(task_id)
        result.ignored = ignore_result
        return result

    def _route(
        self,
        task: Any,
        routed: dict[str, Any],
        time_limit: Any,
        soft_time_limit: Any,
        ignore_result: Any,
    ) -> _Route | None:
        """The route for what the router answered (made on first use), or None: not plain."""
        app = self.app
        if any(k not in _ROUTED for k, v in routed.items() if v is not None):
            return None
        if routed.get("serializer") not in (None, "json") or routed.get("compression"):
            return None
        if routed.get("delivery_mode") is not None or not kombu_json_is_plain():
            return None
        queue = routed.get("queue")
        if queue is None:
            queue = app.amqp.default_queue
        elif isinstance(queue, str):
            queue = app.amqp.queues[queue]
        # Celery's anonymous-exchange publish: a direct exchange, not both exchange and key set.
        named = routed.get("exchange") and routed.get("routing_key")
        if queue.exchange.type != "direct" or named:
            return None
        priority = routed.get("priority")
        try:
            key = (task.name, queue.name, priority, time_limit, soft_time_limit, ignore_result)
            hash(key)
        except TypeError:
            return None
        state = self._thread()
        route = state.routes.get(key)
        if route is None:
            with app.producer_or_acquire() as producer:
                try:
                    channel = producer.channel
                except producer.connection.connection_errors:
                    return None  # Celery's path connects, with kombu's retries, or raises
                if getattr(channel, "publish_plain", None) is None or (
                    queue.name in (getattr(channel, "_expires", None) or {})
                ):
                    return None
                template = {
                    "time_limit": time_limit,
                    "soft_time_limit": soft_time_limit,
                    "ignore_result": ignore_result,
                    "priority": priority,
                }
                messages = RouteMessages(
                    app,
                    channel,
                    task.name,
                    template,
                    queue.name,
                    state.encode,
                    state.ids,
                    reply_to=app.thread_oid,
                    represent=_celerys_repr(app),
                )
            route = state.routes[key] = _Route(messages, queue, ignore_result)
        return route

    def _send(
        self,
        producer: Any,
        channel: Any,
        route: _Route,
        task_id: str,
        args: Any,
        kwargs: Any,
        extra: dict[str, Any] | None,
    ) -> None:
        """Build, hook, encode and publish one message (and its event) on ``producer``."""
        app = self.app
        messages = route.messages
        headers, properties, body = messages.message(task_id, args, kwargs)
        # The properties as the publish hooks see them in Celery's path: kombu's producer adds
        # the delivery mode after them (and so after whatever a receiver added).
        delivery_mode = properties.pop("delivery_mode")
        if extra:
            headers.update(extra)
        connection = producer.connection
        if id(connection) not in route.declared:  # kombu's maybe_declare, once per connection
            if hash(route.queue) not in connection.declared_entities:
                producer.maybe_declare(route.queue)
            route.declared.add(id(connection))
        name, queue = messages.name, messages.queue
        # Asked on every call (1-2 us): a receiver may connect or leave at any time.
        before = signals.before_task_publish._live_receivers(name)
        if before == [celery_hooks._on_before_publish]:  # what the kit's receiver would do
            self.kit.pipeline.before_publish(Publish(name, headers, properties, queue))
        elif before:
            with celery_hooks.publishing(self.kit):
                signals.before_task_publish.send(
                    sender=name,
                    body=body,
                    exchange="",
                    routing_key=queue,
                    declare=[route.queue],
                    headers=headers,
                    properties=properties,
                    retry_policy=dict(app.conf.task_publish_retry_policy or {}),
                )
        priority = properties.pop("priority", None)
        properties["delivery_mode"] = delivery_mode
        if priority is not None:
            properties["priority"] = priority
        if not route.ignore_result:
            app.backend.on_task_call(producer, task_id)
        key, payload = messages.encode(headers, properties, body)
        events: list[tuple[str, str]] = []
        if app.conf.task_send_sent_event:
            events = self._sent_event(channel, route, headers)
        channel.publish_plain(key, queue, payload, events)
        if signals.after_task_publish._live_receivers(name):
            signals.after_task_publish.send(
                sender=name, body=body, headers=headers, exchange="", routing_key=queue
            )

    def _sent_event(
        self, channel: Any, route: _Route, headers: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """Flower's ``task-sent`` event as Celery's default dispatcher publishes it (its fields,
        hostname, pid and Lamport clock; kombu's envelope), as (topic, payload) pairs."""
        dispatcher = self.app.amqp._event_dispatcher
        queue = route.messages.queue
        event = Event(
            "task-sent",
            hostname=dispatcher.hostname,
            utcoffset=utcoffset(),
            pid=dispatcher.pid,
            clock=dispatcher.clock.forward(),
            uuid=headers["id"],
            root_id=headers["root_id"],
            parent_id=headers["parent_id"],
            name=headers["task"],
            args=headers["argsrepr"],
            kwargs=headers["kwargsrepr"],
            retries=headers["retries"],
            eta=headers["eta"],
            expires=headers["expires"],
            queue=queue,
            exchange="",
            routing_key=queue,
        )
        state = self._thread()
        encode = state.encode
        exchange = dispatcher.exchange.name
        data, body_encoding = channel.encode_body(encode(event), channel.body_encoding)
        envelope = {  # kombu's prepare_message and basic_publish, in their order
            "body": data,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": dispatcher.headers,
            "properties": {
                "delivery_mode": dispatcher.delivery_mode,
                "delivery_info": {"exchange": exchange, "routing_key": "task.sent"},
                "priority": channel.default_priority,
                "body_encoding": body_encoding,
                "delivery_tag": state.ids(),
            },
        }
        if route.topics is None:
            route.topics = list(channel._get_publish_topics(exchange, "task.sent"))
        payload = encode(envelope)
        return [(topic, payload) for topic in route.topics]
