"""The attributes of a task attempt's span: the stock instrumentation's ``celery.*`` ones
(:func:`celery_attributes`), the kit's, and what every attempt of one kind of task shares,
worked out once (its leading attributes, its name and the block the exporter encodes once).

An attempt's span has two dozen attributes, and all but a handful are the same for every
attempt of the same task, from the same queue and producer, with the same retry count
(:class:`StaticAttributes`). Building them was the largest part of
an attempt's telemetry on the task's thread: about 20 us measured in the worker, for a dict
that came out the same each time. :func:`profile_for` keys a :class:`AttemptProfile` by the
raw request values those attributes are made from (a tuple read in C from the request's
``__dict__``), so an attempt looks its profile up and adds only its own attributes (ids,
ETA, expiry: :func:`own_attributes`). A request the key cannot hold (an unhashable value)
gets a profile made for it alone, by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from celery.app.task import Context as RequestContext
from opentelemetry.attributes import _clean_attribute_value

from project.telemetry.caches import remember
from project.telemetry.messaging import process_attributes, queue_in

__all__ = [
    "OWN_KEYS",
    "REQUEST_KEYS",
    "AttemptProfile",
    "StaticAttributes",
    "celery_attributes",
    "own_attributes",
    "own_of",
    "profile_for",
    "profile_of",
    "request_values",
    "static_attributes",
]

# -- the stock instrumentation's celery.* attributes ------------------------------------------

#: What ``opentelemetry.instrumentation.celery.utils.set_attributes_from_context`` reads from a
#: request, in its order, with the name it sets (``None``: ``celery.<key>``).
_CONTEXT_KEYS: tuple[tuple[str, str], ...] = (
    ("compression", "celery.compression"),
    ("correlation_id", "messaging.conversation_id"),
    ("countdown", "celery.countdown"),
    ("delivery_info", "celery.delivery_info"),
    ("declare", "messaging.destination_kind"),
    ("eta", "celery.eta"),
    ("exchange", "celery.exchange"),
    ("expires", "celery.expires"),
    ("hostname", "celery.hostname"),
    ("id", "messaging.message.id"),
    ("priority", "celery.priority"),
    ("queue", "celery.queue"),
    ("reply_to", "celery.reply_to"),
    ("retries", "celery.retries"),
    ("routing_key", "messaging.destination"),
    ("serializer", "celery.serializer"),
    ("timelimit", "celery.timelimit"),
    ("origin", "celery.hostname"),
    ("state", "celery.state"),
)


@lru_cache(maxsize=256)  # (exchange, routing key, priority, redelivered): a handful
def _delivery_text(items: tuple[tuple[Any, Any], ...]) -> str:
    return str(dict(items))


def _delivery(value: Mapping[str, Any]) -> str:
    try:
        return _delivery_text(tuple(value.items()))
    except TypeError:  # an unhashable value in it: not remembered
        return str(value)


#: Request keys whose value is new in every message: the span's own, not its shared block.
OWN_KEYS = frozenset({"id", "correlation_id", "eta", "expires", "countdown"})


def celery_attributes(
    carrier: Any,
    shared: dict[str, Any],
    own: dict[str, Any] | None = None,
    omit: frozenset[str] = frozenset(),
) -> None:
    """Add what the stock instrumentation sets from ``carrier`` (a request, or the postrun
    signal's arguments), with the same names and values (a test compares): to ``own`` for the
    keys in :data:`OWN_KEYS` (when given), else to ``shared``; attribute names in ``omit`` are
    left out (the old conventions' names, under ``OTEL_SEMCONV_STABILITY_OPT_IN=messaging``)."""
    # A request's own values are in its __dict__; what it does not hold falls back to
    # Context's class defaults, all None (or 0 retries), which are skipped below anyway.
    values = getattr(carrier, "__dict__", None) if isinstance(carrier, RequestContext) else None
    get = values.get if values is not None else carrier.get
    for key, name in _CONTEXT_KEYS:
        value = get(key)
        if value is None or value == "":
            continue
        target = own if own is not None and key in OWN_KEYS else shared
        if key == "timelimit":
            if value in [(None, None), [None, None]]:
                continue
            if None in value:
                value = ["" if limit is None else str(limit) for limit in value]
        elif key == "retries":
            if value == 0:
                continue
        elif key == "delivery_info":
            routing_key = value.get("routing_key")
            if routing_key is not None and "messaging.destination" not in omit:
                shared.pop("messaging.destination", None)
                shared["messaging.destination"] = routing_key
            value = _delivery(value)
        elif key == "declare":
            for declare in value:
                kind = declare.exchange.type
                if kind in ("direct", "topic"):
                    value = "queue" if kind == "direct" else "topic"
                    break
        if name in omit:
            continue
        kind = type(value)
        if kind is not str and kind is not int and kind is not bool and kind is not float:
            value = _clean_attribute_value(value, None)  # what the SDK's span stores: a tuple
            if value is None:
                continue
        target.pop(name, None)  # the stock instrumentation's order: the last set goes last
        target[name] = value


@dataclass(frozen=True)
class StaticAttributes:
    """A span's leading ``count`` attributes, shared with every attempt of the same task on
    the same queue from the same producer (names, queue, host, delivery, limits): encoded once
    (``encoded``: their serialized OTLP fields) and found clean of personal data once, so the
    exporter encodes and scans only what is the span's own (its ids, outcome, state)."""

    keys: frozenset[str]
    count: int
    encoded: bytes


_statics: dict[tuple[tuple[str, Any], ...], StaticAttributes | None] = {}


def static_attributes(attributes: dict[str, Any]) -> StaticAttributes | None:
    """The shared block for ``attributes`` (made on first sight); ``None`` when they cannot be
    remembered (an unhashable value) or need redaction (then the exporter does it as for any
    span)."""
    key = tuple(attributes.items())
    try:
        return _statics[key]
    except KeyError:
        pass
    except TypeError:
        return None
    from project.telemetry.redaction import is_clean
    from project.telemetry.wire import static_block

    encoded = static_block(attributes) if is_clean(attributes) else None
    found = None if encoded is None else StaticAttributes(frozenset(attributes), len(key), encoded)
    return remember(_statics, key, found)


#: The request keys the shared attributes are made from (besides the task's name, the
#: delivery and the time limits, which the key holds in a hashable form).
_SHARED_KEYS = (
    "compression",
    "declare",
    "exchange",
    "hostname",
    "origin",
    "priority",
    "queue",
    "reply_to",
    "retries",
    "routing_key",
    "serializer",
    "state",
)
#: The request keys of an attempt's own attributes, in the stock instrumentation's order,
#: with the names it sets (as in :data:`_CONTEXT_KEYS`).
_OWN = (
    ("correlation_id", "messaging.conversation_id"),
    ("countdown", "celery.countdown"),
    ("eta", "celery.eta"),
    ("expires", "celery.expires"),
    ("id", "messaging.message.id"),
)
assert {key for key, _ in _OWN} == OWN_KEYS
#: Every request key an attempt's attributes are made from, its profile's and its own: what
#: a lean attempt span keeps of its request (:mod:`project.telemetry.attempt_span`).
REQUEST_KEYS = (*_SHARED_KEYS, "delivery_info", "timelimit", *(key for key, _ in _OWN))


@dataclass(frozen=True)
class AttemptProfile:
    """The shared part of one kind of attempt's span (never mutated: spans copy it)."""

    span_name: str
    task_name: str
    queue: str
    shared: Mapping[str, Any]
    static: StaticAttributes | None


_profiles: dict[tuple[Any, ...], AttemptProfile] = {}


def request_values(request: Any) -> Mapping[str, Any]:
    """What a request holds, read once per attempt: a Celery request's own values are its
    ``__dict__`` (what it does not hold is one of ``Context``'s class defaults, all ``None``
    or ``0``, which the attributes skip anyway)."""
    if isinstance(request, RequestContext) or not isinstance(request, Mapping):
        values: Mapping[str, Any] = vars(request)
        return values
    return request


def profile_for(
    task_name: str, values: Mapping[str, Any], group: str, omit: frozenset[str], rename: bool
) -> AttemptProfile:
    """The profile of an attempt of ``task_name`` whose request holds ``values``
    (:func:`request_values`) on a worker of consumer group ``group`` (``omit``: attribute
    names left out; ``rename``: the conventions' span name)."""
    return profile_of(task_name, tuple(map(values.get, REQUEST_KEYS)), group, omit, rename)


#: Where the delivery and the time limits sit in a request's facts (the request's values of
#: :data:`REQUEST_KEYS`, in order; the own values come last).
_DELIVERY_AT = len(_SHARED_KEYS)
_LIMITS_AT = _DELIVERY_AT + 1


def profile_of(
    task_name: str, facts: tuple[Any, ...], group: str, omit: frozenset[str], rename: bool
) -> AttemptProfile:
    """:func:`profile_for` from a request's ``facts`` (its values of :data:`REQUEST_KEYS`,
    in order: what a lean attempt span keeps), without making a mapping of them first: the
    export thread looks a profile up for every span it encodes."""
    delivery = facts[_DELIVERY_AT]
    limits = facts[_LIMITS_AT]
    try:
        key = (
            task_name,
            group,
            omit,
            rename,
            facts[:_DELIVERY_AT],
            tuple(delivery.items()) if type(delivery) is dict else delivery,
            tuple(limits) if type(limits) is list else limits,
        )
        return _profiles[key]
    except KeyError:
        values = dict(zip(REQUEST_KEYS, facts, strict=True))
        return remember(_profiles, key, _make(task_name, values, group, omit, rename))
    except TypeError:  # an unhashable value: a profile for this request alone
        values = dict(zip(REQUEST_KEYS, facts, strict=True))
        return _make(task_name, values, group, omit, rename)


def _make(
    task_name: str, values: Mapping[str, Any], group: str, omit: frozenset[str], rename: bool
) -> AttemptProfile:
    delivery = values.get("delivery_info") or {}
    queue = queue_in(delivery)
    retries = int(values.get("retries") or 0)
    # What every attempt of this task on this queue from this producer shares first, then
    # what is each attempt's own: the exporter encodes and scans the first part once.
    shared: dict[str, Any] = {
        **process_attributes(queue, group),
        "messaging.operation.type": "process",
        "task.name": task_name,
        "task.queue": queue,
        "task.priority": int(delivery.get("priority") or 0),
        "task.retry_count": retries,
        "task.attempt": retries + 1,
        "celery.action": "run",
    }
    celery_attributes(values, shared, {}, omit)  # the own part is each attempt's
    shared["celery.task_name"] = task_name
    span_name = f"process {queue}" if rename else f"run/{task_name}"
    return AttemptProfile(span_name, task_name, queue, shared, static_attributes(shared))


def own_attributes(task_id: str, values: Mapping[str, Any], omit: frozenset[str]) -> dict[str, Any]:
    """An attempt's own attributes, after its profile's shared ones: its ids, and its ETA,
    expiry and countdown when it has them (what ``celery_attributes`` puts in ``own``)."""
    return own_of(task_id, tuple(values.get(key) for key, _ in _OWN), omit)


def own_of(task_id: str, facts: tuple[Any, ...], omit: frozenset[str]) -> dict[str, Any]:
    """:func:`own_attributes` from a request's ``facts`` (:func:`profile_of`; only the own
    values at their end are read)."""
    own: dict[str, Any] = {"task.id": task_id, "messaging.message.id": task_id}
    for (_, name), value in zip(_OWN, facts[-len(_OWN) :], strict=True):
        if value is None or value == "" or name in omit:
            continue
        kind = type(value)
        if kind is not str and kind is not int and kind is not bool and kind is not float:
            value = _clean_attribute_value(value, None)
            if value is None:
                continue
        own.pop(name, None)  # the stock instrumentation's order: the last set goes last
        own[name] = value
    return own
