"""The JSON of a plain task's headers from pre-encoded text, a quarter of encoding the dict.

A plain task's headers are Celery's template (:class:`~project.enqueue.messages.RouteMessages`)
with four strings of its own (``id``, ``root_id``, ``argsrepr``, ``kwargsrepr``), plus the
publish time the kit's stamp adds (:data:`~project.broker.queues.PUBLISHED_AT_HEADER`).
Encoding that 20-key dict with kombu's JSON encoder is the largest single cost of a bulk
publish (about 3.8 us of 17 per task on the 2-CPU Xeon). :class:`HeaderTemplate` encodes the
template once, around placeholders, and per task only escapes the four strings and formats the
float.

It answers only when the headers are exactly what it was made for: the same keys in the same
order, every other value the very object of the template (``is``: an equal value of another
type, ``False`` for ``0``, would encode differently), ``timelimit`` the template's two limits,
``stamps`` empty, the publish time a finite float. Anything a publish receiver, a caller's
``headers=`` or telemetry changed or added makes it return None, and the caller encodes the
dict as before, so the bytes are always those of kombu's encoder
(``tests/project/test_bulk.py`` and ``tests/project/test_direct_publish.py`` compare them).
"""

from __future__ import annotations

import json.encoder
import math
from collections.abc import Callable, Mapping
from operator import is_, itemgetter
from typing import Any

from project.broker.queues import PUBLISHED_AT_HEADER

__all__ = ["HeaderTemplate"]

#: The headers that differ from task to task, all strings, in Celery's order.
STRINGS = ("id", "root_id", "argsrepr", "kwargsrepr")
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


class HeaderTemplate:
    """kombu's JSON of ``template`` with its :data:`STRINGS` and the publish time filled in."""

    def __init__(self, template: Mapping[str, Any], encode: Callable[[Any], str]) -> None:
        self.order = (*template, PUBLISHED_AT_HEADER)
        self.usable = PUBLISHED_AT_HEADER not in template and all(k in template for k in STRINGS)
        constant = [k for k in template if k not in STRINGS and k not in ("timelimit", "stamps")]
        self._constants = itemgetter(*constant)
        self._expected = tuple(template[k] for k in constant)
        self._varying = itemgetter(*STRINGS, "timelimit", "stamps", PUBLISHED_AT_HEADER)
        limits = template.get("timelimit")
        self._limits = tuple(limits) if isinstance(limits, list | tuple) else ()
        self.usable = self.usable and len(self._limits) == 2 and template.get("stamps") == {}
        self._parts: tuple[str, ...] = ()
        if self.usable:
            self._parts = self._split(template, encode)

    @staticmethod
    def _split(template: Mapping[str, Any], encode: Callable[[Any], str]) -> tuple[str, ...]:
        """The template's JSON cut at each varying value: five cuts, the text between them."""
        marks = {key: f"\x01kit-{key}\x01" for key in (*STRINGS, PUBLISHED_AT_HEADER)}
        text = encode({**template, **marks, "stamps": {}})
        parts = []
        for key in (*STRINGS, PUBLISHED_AT_HEADER):  # each occurs once, in this order
            before, found, text = text.partition(_string(marks[key]))
            if not found:  # pragma: no cover - a Celery whose headers moved
                return ()
            parts.append(before)
        return (*parts, text)

    def encode(self, headers: dict[str, Any]) -> str | None:
        """The JSON kombu's encoder writes for ``headers``, or None: encode them yourself."""
        parts = self._parts
        if not parts or tuple(headers) != self.order:
            return None
        if not all(map(is_, self._constants(headers), self._expected)):
            return None
        task_id, root_id, args, kwargs, limits, stamps, published = self._varying(headers)
        if not (
            type(task_id) is str
            and type(root_id) is str
            and type(args) is str
            and type(kwargs) is str
            and type(limits) is list
            and len(limits) == 2
            and limits[0] is self._limits[0]
            and limits[1] is self._limits[1]
            and type(stamps) is dict
            and not stamps
            and type(published) is float
            and math.isfinite(published)
        ):
            return None
        return (
            f"{parts[0]}{_string(task_id)}{parts[1]}{_string(root_id)}{parts[2]}"
            f"{_string(args)}{parts[3]}{_string(kwargs)}{parts[4]}"
            f"{float.__repr__(published)}{parts[5]}"
        )
