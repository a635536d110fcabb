"""Protobuf's wire format for OTLP attributes, written from Python without building messages.

The pieces :mod:`project.telemetry.encoding` assembles spans from: varints, length-delimited
fields, a span's attributes as serialized field-9 pieces (strings written by hand, other values
through protobuf once and remembered), and the shared block of a task attempt's leading
attributes (:class:`~project.telemetry.attempts.StaticAttributes`). Every piece is exactly what
protobuf itself writes (the encoding tests compare whole requests with upstream's encoder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from project.telemetry.caches import remember

__all__ = [
    "attribute_bytes",
    "attribute_messages",
    "delimited",
    "static_block",
    "string_field",
    "string_piece",
    "string_value",
    "value_field",
    "varint",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SMALL = [bytes((n,)) for n in range(0x80)]  # one-byte varints: nearly every length here


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


# Tags of the Span fields (field number << 3 | wire type): 2 length-delimited, 0 varint,
# 1 fixed64, 5 fixed32.

MAX_CACHED_LENGTH = 256  # longer strings (messages, tracebacks) are encoded each time


_messages: dict[tuple[str, type, Any], KeyValue] = {}


def _value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Sequence):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    if isinstance(value, Mapping):
        pairs = [KeyValue(key=str(k), value=_value(v)) for k, v in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    raise TypeError(f"cannot encode an attribute of type {type(value).__name__}")


def _remembered(
    attributes: Mapping[str, Any] | None,
    cache: dict[tuple[str, type, Any], T],
    build: Callable[[str, Any], T],
) -> list[T]:
    """``build(key, value)`` of each attribute, from ``cache`` for scalar values (bounded:
    cleared when full; long strings are not kept)."""
    encoded = []
    for key, value in (attributes or {}).items():
        kind = type(value)
        cacheable = kind is bool or kind is int or kind is float
        cacheable = cacheable or (kind is str and len(value) <= MAX_CACHED_LENGTH)
        entry = (key, kind, value)  # the type too: True and 1 are equal keys
        item = cache.get(entry) if cacheable else None
        if item is None:
            try:
                item = build(key, value)
            except TypeError:  # the SDK cleans attributes: never seen, skipped as upstream does
                logger.debug("attribute %s not encoded", key, exc_info=True)
                continue
            if cacheable:
                remember(cache, entry, item)
        encoded.append(item)
    return encoded


def attribute_messages(attributes: Mapping[str, Any] | None) -> list[KeyValue]:
    """As ``KeyValue`` messages (events, links, resources, scopes)."""
    return _remembered(attributes, _messages, lambda k, v: KeyValue(key=k, value=_value(v)))


_ATTRIBUTE = b"\x4a"  # the Span's field 9 (attributes), length-delimited
_fields: dict[tuple[str, type, Any], bytes] = {}  # (key, type, value) -> serialized field 9


_strings: dict[tuple[str, str], bytes] = {}  # (key, str value) -> serialized field 9


_keys: dict[str, bytes] = {}  # attribute name -> KeyValue's field 1 and field 2's tag


def string_field(key: str, value: str) -> bytes:
    """A string attribute as field 9, written directly: ``KeyValue{1: key, 2: AnyValue{1:
    value}}`` (what protobuf writes; a task's ids are new in every span, so this is the path
    they take). Raises ``UnicodeEncodeError`` for a lone surrogate, as protobuf refuses it."""
    return value_field(key, string_value(value))


def string_value(value: str) -> bytes:
    """``AnyValue{1: value}`` serialized: made once for a value several attributes share (a
    task's id is its message id too). Raises ``UnicodeEncodeError`` for a lone surrogate."""
    text = value.encode()
    return b"\x0a" + varint(len(text)) + text


def value_field(key: str, any_value: bytes) -> bytes:
    """An attribute as field 9 from its serialized ``AnyValue``."""
    head = _keys.get(key)
    if head is None:
        name = key.encode()
        head = remember(_keys, key, b"\x0a" + varint(len(name)) + name + b"\x12")
    pair = head + varint(len(any_value)) + any_value
    return _ATTRIBUTE + varint(len(pair)) + pair


def string_piece(key: str, value: str) -> bytes | None:
    """:func:`string_field`, remembered by (key, value) for values up to
    :data:`MAX_CACHED_LENGTH`; ``None`` for a lone surrogate (skipped, as protobuf refuses
    it)."""
    piece = _strings.get((key, value))
    if piece is None:
        try:
            piece = string_field(key, value)
        except UnicodeEncodeError:
            logger.debug("attribute %s not encoded", key, exc_info=True)
            return None
        if len(value) <= MAX_CACHED_LENGTH:
            remember(_strings, (key, value), piece)
    return piece


def attribute_bytes(attributes: Mapping[str, Any] | None) -> list[bytes]:
    """As the span's serialized field 9, one piece per attribute: strings written directly
    and remembered by (key, value), other values through protobuf, remembered by (key, type,
    value)."""
    if not attributes:
        return []
    encoded: list[bytes] = []
    fields = _fields
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            piece = string_piece(key, value)
            if piece is not None:
                encoded.append(piece)
            continue
        # The type is part of the key: True and 1 are equal keys. A tuple is remembered when
        # it holds only strings and ints (the stock time limits), never bools.
        cacheable = kind is int or kind is float or kind is bool
        if kind is tuple and len(value) <= 8:
            cacheable = all(type(v) is str or type(v) is int for v in value)
        entry = (key, kind, value)
        item = fields.get(entry) if cacheable else None
        if item is None:
            try:
                item = _field(key, value)
            except TypeError:  # the SDK cleans attributes: never seen, skipped as upstream does
                logger.debug("attribute %s not encoded", key, exc_info=True)
                continue
            if cacheable:
                remember(fields, entry, item)
        encoded.append(item)
    return encoded


def static_block(attributes: Mapping[str, Any]) -> bytes | None:
    """``attributes`` as serialized field-9 pieces, for a span's leading attributes that many
    spans share (:class:`~project.telemetry.attempts.StaticAttributes`); ``None`` when one cannot
    be encoded. Pure: it may run on a task's thread."""
    pieces = []
    for key, value in attributes.items():
        try:
            if type(value) is str:
                pieces.append(string_field(key, value))
            else:
                pieces.append(_field(key, value))
        except (TypeError, UnicodeEncodeError):
            return None
    return b"".join(pieces)


def _field(key: str, value: Any) -> bytes:
    return delimited(_ATTRIBUTE, KeyValue(key=key, value=_value(value)).SerializeToString())
