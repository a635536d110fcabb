"""Telemetry of the image operations: attributes on the task's span, a duration histogram.

Each operation adds to the current span (the ``run/image:*`` span of the Celery
instrumentation) what it did: ``image.operation``, source and output dimensions, formats, bytes
and frames, and the *relative* paths (never the storage root: absolute paths would leak the
server's layout into every trace backend). Decoding and encoding get child spans of their own.

``kit.image.duration`` (seconds, by ``image.operation`` and ``image.outcome``) times the image
work alone, without the broker and result round trips that ``kit.task.duration`` includes.
Instruments are proxies created at import, so they report to whatever provider the process
sets up later (a prefork child sets its own after ``fork``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from project.telemetry.metrics import DURATION_BUCKETS

__all__ = ["IMAGE_DURATION", "Observation", "observed", "tracer"]

IMAGE_DURATION = "kit.image.duration"

tracer = trace.get_tracer("project.images")
_duration = metrics.get_meter("project.images").create_histogram(
    IMAGE_DURATION,
    unit="s",
    description="Time an image operation took (read, decode, process, encode, write)",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
)


@dataclass
class Observation:
    """What an operation records about itself, filled in as it learns it."""

    operation: str
    started: float = field(default_factory=time.perf_counter)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def add(self, prefix: str, **values: AttributeValue | None) -> None:
        self.attributes.update(
            {f"image.{prefix}.{key}": value for key, value in values.items() if value is not None}
        )


@contextmanager
def observed(operation: str) -> Iterator[Observation]:
    """Times the block and puts its attributes on the current span, also when it fails."""
    span = trace.get_current_span()  # the task's span: children opened inside do not count
    observation = Observation(operation)
    outcome = "error"
    try:
        yield observation
        outcome = "success"
    finally:
        if span.is_recording():
            span.set_attributes({"image.operation": operation, **observation.attributes})
        _duration.record(
            observation.elapsed(), {"image.operation": operation, "image.outcome": outcome}
        )
