"""Which of a tracer provider's span processors an attempt's span calls, and for which hooks.

The SDK's ``SynchronousMultiSpanProcessor`` calls every processor's ``on_start``,
``_on_ending`` and ``on_end`` for every span, including hooks whose body is ``pass`` (the batch
processor's ``on_start`` and ``_on_ending``). :class:`~project.telemetry.spans.ConsumerSpan`
calls only the hooks that do something, in the SDK's order, from a :class:`Plan` made once per
processor tuple (again whenever a processor is added: the SDK replaces its tuple then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

from project.telemetry.caches import remember

__all__ = ["Plan", "plan_of"]


def _nothing(*_: Any, **__: Any) -> None:
    pass


_NOTHING = _nothing.__code__.co_code


def _does_something(method: Any) -> bool:
    """False for a hook whose body is empty (``pass``): calling it would change nothing.
    Anything else, or anything not plain Python, counts as doing something."""
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    return code is None or code.co_code != _NOTHING or bool(code.co_freevars)


@dataclass(frozen=True)
class Plan:
    """The processors of a ``SynchronousMultiSpanProcessor`` whose hooks do something, in its
    order: what it calls one by one, without the calls that would do nothing (the batch
    processor's ``on_start`` and ``_on_ending`` are empty)."""

    processors: tuple[Any, ...]
    starting: tuple[Any, ...]
    ending: tuple[Any, ...]
    ended: tuple[Any, ...]


_plans: dict[int, Plan] = {}


def plan_of(multi: Any) -> Plan | None:
    """The plan for ``multi`` (made again whenever a processor is added: the SDK replaces its
    tuple then); ``None`` for any other kind of span processor (called as it is)."""
    if type(multi) is not SynchronousMultiSpanProcessor:
        return None
    processors = multi._span_processors
    plan = _plans.get(id(multi))
    if plan is None or plan.processors is not processors:
        plan = Plan(
            processors,
            tuple(p for p in processors if _does_something(p.on_start)),
            tuple(p for p in processors if _does_something(p._on_ending)),
            tuple(p for p in processors if _does_something(p.on_end)),
        )
        remember(_plans, id(multi), plan)  # one per tracer provider: a handful
    return plan
