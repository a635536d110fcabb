"""The worker's queue gauges, read back from a real OTLP receiver: a task that no worker takes
shows in its queue's depth, and its age since publish is the queue's latency."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.otlp import MetricPoint, OTLPReceiver, telemetry_env
from tests.support.polling import eventually


def _latest(receiver: OTLPReceiver, name: str, queue: str) -> MetricPoint | None:
    points = [p for p in receiver.latest(name).values() if p.attributes["task.queue"] == queue]
    return points[-1] if points else None


@pytest.mark.e2e
def test_a_task_nobody_consumes_reports_its_wait_as_the_queue_latency(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from tests.support.tasks import add

    published = time.time()
    add.apply_async((1, 2), queue="low")  # the worker below consumes "default" only
    start_worker(concurrency=1, queues=["default"], env=telemetry_env(receiver))

    def waited_a_second() -> MetricPoint | None:
        point = _latest(receiver, "kit.queue.latency", "low")
        return point if point is not None and point.value >= 1.0 else None

    latency = eventually(waited_a_second, timeout=30)
    assert latency.kind == "gauge"
    assert latency.value <= time.time() - published  # its age, not a guess
    depth = _latest(receiver, "kit.queue.depth", "low")
    assert depth is not None and depth.value == 1
    empty = _latest(receiver, "kit.queue.latency", "default")
    assert empty is not None and empty.value == 0.0  # nothing waits there
