"""Celery protocol-2 task messages for :func:`project.enqueue.bulk.enqueue_many`, built by the kit.

Publishing one plain task through Celery and kombu costs some 390 Python calls: Celery's
``create_task_message`` (its headers dict, ``saferepr``, the node name looked up again), kombu's
``prepare_message`` envelope, a JSON encoder made for the body and another for the envelope,
``uuid4`` twice, and the channel's routing of each message to its priority list. For a batch of
plain tasks (no delay, link, chain or expiry: what ``enqueue_many`` already publishes outside
``apply_async``) all of that but the ids and the arguments is the same for every task of a
route, so :class:`RouteMessages` asks Celery for it once (a template message from
``create_task_message``) and fills in each task's id and arguments. What it writes to Redis is
byte for byte what the generic path writes (``tests/project/test_bulk.py`` compares them): the
same header and property order, the same JSON (kombu's encoder, its separators and
``ensure_ascii``), the same base64 body.
"""

from __future__ import annotations

import base64
import contextlib
import json.encoder
import os
from collections.abc import Callable, Iterable
from operator import is_
from typing import Any

from celery.canvas import Signature
from celery.result import AsyncResult
from kombu import serialization
from kombu.exceptions import EncodeError
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from project.enqueue.dedup import UNIQUE_OPTION, Claim, _queue_of, unique_claim, unique_key
from project.enqueue.headers import HeaderTemplate

__all__ = [
    "RouteMessages",
    "TaskIds",
    "celery_message",
    "json_encoder",
    "kombu_envelope",
    "kombu_json_is_plain",
    "prepare_tasks",
    "short_repr",
]

REPR_MAX = 1024  # Celery's argsrepr_maxsize / kwargsrepr_maxsize
_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
#: hex digit of a random byte's high nibble -> the RFC 4122 variant digit uuid4 writes there
_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def short_repr(value: Any) -> str:
    """``argsrepr``/``kwargsrepr``: the arguments' repr, cut at Celery's 1024 characters."""
    text = repr(value)
    return text if len(text) <= REPR_MAX else text[: REPR_MAX - 3] + "..."


def json_encoder() -> Callable[[Any], str]:
    """kombu's JSON, the bytes of ``kombu.utils.json.dumps`` (which Celery's ``json`` serializer
    and kombu's Redis transport call), from one reusable C encoder.

    ``json.dumps(cls=...)`` makes a new encoder for every call, a third of the cost of encoding
    a small message. This builds the very encoder ``JSONEncoder.encode`` builds (same default,
    separators, ``ensure_ascii``, ``allow_nan``) once. Its circular-reference markers are
    cleared after a failed encode, as a fresh encoder would start without them.
    """
    encoder = kombu_json.JSONEncoder()
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has _json
        return encoder.encode
    markers: dict[int, Any] = {}
    iterencode = make(
        markers,
        encoder.default,
        json.encoder.encode_basestring_ascii,
        None,
        encoder.key_separator,
        encoder.item_separator,
        False,
        False,
        True,
    )
    join = "".join

    def encode(value: Any) -> str:
        try:
            return join(iterencode(value, 0))
        except BaseException:
            markers.clear()
            raise

    return encode


_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def kombu_json_is_plain() -> bool:
    """Celery's ``json`` serializer and the Redis transport still use kombu's own ``dumps`` (a
    process that registered another ``json`` encoder gets the generic path)."""
    registered = serialization.registry._encoders.get("json")
    return (
        registered is not None
        and registered.encoder is kombu_json.dumps
        and getattr(kombu_redis, "dumps", None) is kombu_json.dumps
    )


class TaskIds:
    """uuid4 strings (what ``kombu.utils.uuid`` returns), from ``os.urandom`` in chunks.

    ``str(uuid.uuid4())`` goes through ``UUID.__init__`` and ``__str__`` in Python for each id;
    this formats the same 122 random bits, version 4 and RFC 4122 variant, from one
    ``os.urandom`` call per ``chunk`` ids.
    """

    def __init__(self, chunk: int = 256) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {chunk}")
        self.chunk = chunk
        self._ready: list[str] = []

    def __call__(self) -> str:
        if not self._ready:
            self._ready = self._make(self.chunk)
        return self._ready.pop()

    @staticmethod
    def _make(count: int) -> list[str]:
        raw = os.urandom(16 * count).hex()
        variant = _VARIANT
        return [
            f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:32]}"
            for h in (raw[i : i + 32] for i in range(0, 32 * count, 32))
        ]


class RouteMessages:
    """The messages of one route (a task name with its options, routed once), built from one
    template message Celery made for it.

    :meth:`message` gives the headers, properties and body that Celery's
    ``create_task_message`` would for the task (what the publish signals and the kit's
    middleware see and may change); :meth:`encode` then does what kombu's
    ``prepare_message``, ``basic_publish`` and the Redis ``_put`` do to it, and returns the
    Redis list and the JSON to ``LPUSH`` there.
    """

    def __init__(
        self,
        app: Any,
        channel: Any,
        name: str,
        routed: dict[str, Any],
        queue: str,
        encode: Callable[[Any], str],
        ids: Callable[[], str],
        reply_to: str | None = None,
        represent: Callable[[Any], str] = short_repr,
    ) -> None:
        headers, properties, body = celery_message(
            app, name, _PLACEHOLDER, (), {}, routed, reply_to=reply_to
        )
        self.name = name
        self.represent = represent
        self.headers = headers
        self.timelimit = tuple(headers["timelimit"])
        self.priority = properties.pop("priority", None)
        self.properties = properties
        self.embed: dict[str, Any] = dict(body[2])
        self.queue = queue
        self.channel = channel
        self.body_encoding = channel.body_encoding
        self.default_priority = channel.default_priority
        self._encode = encode
        self._ids = ids
        self._lists: dict[Any, str] = {}
        # The properties as they leave the middleware, in the usual case (the kit's stamp gave
        # the priority), and kombu's envelope of them around the three values that vary.
        self._stamped = [*self.properties, "priority"]
        self._stamped_values = (self.properties["reply_to"], self.properties["delivery_mode"])
        self._after_id = (
            f', "reply_to": {encode(self.properties["reply_to"])}, '
            f'"delivery_mode": {encode(self.properties["delivery_mode"])}, '
            f'"delivery_info": {{"exchange": "", "routing_key": {_string(queue)}}}, "priority": '
        )
        self._after_priority = f', "body_encoding": {_string(self.body_encoding)}, "delivery_tag": '
        self._priorities: dict[int, str] = {}
        self._headers = HeaderTemplate(headers, encode)

    def message(
        self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], tuple[Any, ...]]:
        """Headers, properties and body, fresh for this task (mutable, as Celery's are)."""
        headers = self.headers.copy()
        headers["id"] = headers["root_id"] = task_id
        headers["timelimit"] = list(self.timelimit)
        headers["argsrepr"] = self.represent(args)
        headers["kwargsrepr"] = self.represent(kwargs)
        headers["stamps"] = {}
        properties = self.properties.copy()
        properties["correlation_id"] = task_id
        if self.priority is not None:
            properties["priority"] = self.priority
        return headers, properties, (args, kwargs, self.embed.copy())

    def encode(
        self, headers: dict[str, Any], properties: dict[str, Any], body: tuple[Any, ...]
    ) -> tuple[str, str]:
        """The Redis list and the envelope JSON kombu would ``LPUSH`` for this message (to the
        queue's own list, as kombu does for the anonymous exchange)."""
        encode = self._encode
        try:  # as kombu's serialization.dumps reports a body it cannot encode
            data = encode(body)
        except Exception as exc:
            raise EncodeError(exc) from exc
        if self.body_encoding == "base64":
            data = base64.b64encode(data.encode("utf-8")).decode("ascii")
            body_encoding = self.body_encoding
        else:
            data, body_encoding = self.channel.encode_body(data, self.body_encoding)
        envelope = (  # kombu's prepare_message dict, in its order
            f'{{"body": {_string(data)}, "content-encoding": "utf-8", '
            f'"content-type": "application/json", '
            f'"headers": {self._headers.encode(headers) or encode(headers)}, '
            f'"properties": '
        )
        if list(properties) == self._stamped:
            stamped = properties["reply_to"], properties["delivery_mode"]
            correlation_id = properties["correlation_id"]
            if all(map(is_, stamped, self._stamped_values)) and type(correlation_id) is str:
                priority = properties["priority"] or self.default_priority
                text = self._priorities.get(priority) if type(priority) is int else None
                if text is None:
                    text = encode(priority)
                    if type(priority) is int:
                        self._priorities[priority] = text
                return self._list_for(priority), (
                    f'{envelope}{{"correlation_id": {_string(correlation_id)}{self._after_id}'
                    f"{text}{self._after_priority}{_string(self._ids())}}}}}"
                )
        priority = properties.pop("priority", None)  # kombu's prepare_message, then
        properties.setdefault("delivery_info", {})
        properties.setdefault("priority", priority or self.default_priority)
        properties["body_encoding"] = body_encoding  # basic_publish's in-place augment
        properties["delivery_tag"] = self._ids()
        properties["delivery_info"].update(exchange="", routing_key=self.queue)
        return self._list_for(properties["priority"]), f"{envelope}{encode(properties)}}}"

    def _list_for(self, priority: Any) -> str:
        """The queue's list for ``priority`` (kombu's clamping and priority steps)."""
        try:
            return self._lists[priority]
        except (KeyError, TypeError):
            pass
        channel = self.channel
        step = channel._get_message_priority({"properties": {"priority": priority}})
        key = str(channel._q_for_pri(self.queue, step))
        with contextlib.suppress(TypeError):  # unhashable: kombu falls back to its default
            self._lists[priority] = key
        return key


def celery_message(
    app: Any,
    name: str,
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    routed: dict[str, Any],
    reply_to: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], tuple[Any, ...]]:
    """Headers, properties and body as Celery's ``create_task_message`` makes them for a bulk
    publish (no task-sent event; the route's limits, priority and ``ignore_result``): the
    template of :class:`RouteMessages`, and every message of a route it does not serve.
    ``reply_to``: what ``apply_async`` sets there (the thread's oid; a bulk publish sets none)."""
    message = app.amqp.create_task_message(
        task_id,
        name,
        args,
        kwargs,
        time_limit=routed.get("time_limit"),
        soft_time_limit=routed.get("soft_time_limit"),
        create_sent_event=False,
        root_id=task_id,
        ignore_result=routed.get("ignore_result", False),
        argsrepr=short_repr(args),
        kwargsrepr=short_repr(kwargs),
        reply_to=reply_to,
    )
    properties = {**message.properties, "delivery_mode": 2}
    if routed.get("priority") is not None:
        properties["priority"] = routed["priority"]
    return dict(message.headers), properties, message.body


def kombu_envelope(
    channel: Any, headers: dict[str, Any], properties: dict[str, Any], body: Any
) -> dict[str, Any]:
    """kombu's own envelope of a message (``serialization.dumps``, ``prepare_message``)."""
    content_type, content_encoding, data = serialization.dumps(body, serializer="json")
    envelope: dict[str, Any] = channel.prepare_message(
        data, properties.pop("priority", None), content_type, content_encoding, headers, properties
    )
    return envelope


def _claim(signature: Signature, unique: bool, ttl: float) -> Claim | None:
    """The step's own unique key (``step(unique=...)``), else, with ``unique``, the default one."""
    claim = unique_claim(signature)
    if claim is None and unique:
        key = unique_key(signature.task, _queue_of(signature), signature.args, signature.kwargs)
        claim = Claim(key, str(signature.id), ttl)
    return claim


def _freeze(signature: Signature, ids: TaskIds) -> AsyncResult:
    """A plain task signature only needs its id fixed (a fifth of the bulk time went to
    Celery's general ``freeze``); chains, groups and chords take Celery's own path."""
    if type(signature) is not Signature:
        return signature.freeze()
    task_id = signature.options.get("task_id") or ids()
    signature.options["task_id"] = task_id
    return signature.AsyncResult(task_id)


def prepare_tasks(
    signatures: Iterable[Signature], unique: bool, ttl: float, ids: TaskIds
) -> list[tuple[Signature, str, Claim | None, AsyncResult | None]]:
    """Each task's id, claim and (when it had to be frozen) result handle, in input order.

    A plain signature of a registered task that claims no lock is only read: it gets an id
    here and its result handle when it is published. Any other is cloned and frozen (its
    ``step(unique=...)`` option is popped from the clone), as Celery would.
    """
    prepared: list[tuple[Signature, str, Claim | None, AsyncResult | None]] = []
    registered: Any = None
    for signature in signatures:
        if registered is None:
            registered = signature.app.tasks
        options = signature["options"]
        if (
            not unique
            and type(signature) is Signature
            and UNIQUE_OPTION not in options
            and signature["task"] in registered
        ):
            prepared.append((signature, str(options.get("task_id") or ids()), None, None))
            continue
        signature = signature.clone()
        frozen = _freeze(signature, ids)
        claim = _claim(signature, unique, ttl)
        prepared.append((signature, str(frozen.id), claim, frozen))
    return prepared
