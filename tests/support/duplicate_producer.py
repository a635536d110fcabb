"""A producer with telemetry on that enqueues the same unique work twice, then flushes."""

from __future__ import annotations

from project import DuplicateTaskError
from project.enqueue.dedup import enqueue_unique
from project.telemetry import setup_telemetry, shutdown_telemetry
from tests.support.tasks import add

setup_telemetry("producer")
first = enqueue_unique(add.s(7, 7), key="report:7")
try:
    enqueue_unique(add.s(7, 7), key="report:7")
except DuplicateTaskError as exc:
    assert exc.holder_id == first.id
    print(first.id)
shutdown_telemetry()
