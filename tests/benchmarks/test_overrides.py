"""Taking a kit middleware out of a benchmark worker's pipeline (``BENCH_KIT_DROP``)."""

from __future__ import annotations

import pytest

from benchmarks.throughput.overrides import OverrideError, drop_middleware, parse_drop
from project import create_app, kit_of, load_settings

CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing is sent: the app is only built


def test_the_named_middleware_leave_the_pipeline_and_the_rest_stay() -> None:
    app = create_app(load_settings({"REDIS_URL": CLOSED_PORT}))
    before = [type(m).__name__ for m in kit_of(app).pipeline]
    drop_middleware(app, parse_drop(" Counters, Leases "))
    after = [type(m).__name__ for m in kit_of(app).pipeline]
    assert after == [name for name in before if name not in ("Counters", "Leases")]
    assert len(after) == len(before) - 2


def test_a_name_the_pipeline_does_not_hold_is_refused() -> None:
    app = create_app(load_settings({"REDIS_URL": CLOSED_PORT}))
    with pytest.raises(OverrideError, match="NoSuchMiddleware"):
        drop_middleware(app, ("NoSuchMiddleware",))
