"""A refused duplicate is counted and shows as an event on its producer span."""

from __future__ import annotations

import pytest

from tests.support.cli import run_python
from tests.support.otlp import OTLPReceiver, telemetry_env


@pytest.mark.e2e
def test_duplicate_is_counted_and_visible_on_the_producer_span() -> None:
    receiver = OTLPReceiver().start()
    try:
        env = telemetry_env(receiver)
        done = run_python("-m", "tests.support.duplicate_producer", env=env, timeout=60, check=True)
        holder = done.stdout.strip()
        spans = receiver.wait_for_spans(
            lambda spans: len([s for s in spans if s.name == "enqueue_unique/tests.add"]) == 2
        )
        first, refused = sorted(
            (s for s in spans if s.name == "enqueue_unique/tests.add"), key=lambda s: s.start_ns
        )
        assert first.attributes["task.id"] == holder
        assert not first.events
        assert refused.events == [("task.duplicate", {"task.holder_id": holder})]
        assert not refused.is_error
        # The published one has its apply_async span as a child; the duplicate published nothing.
        children = [s for s in spans if s.name == "apply_async/tests.add"]
        assert [c.parent_id for c in children] == [first.span_id]
        assert receiver.total("kit.tasks.duplicates", **{"task.name": "tests.add"}) == 1
    finally:
        receiver.stop()
