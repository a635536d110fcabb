"""The telemetry benchmark's producer side, run in a subprocess by :mod:`benchmarks.core.producer`.

A fresh process gets the scenario's own OTEL_* settings (the kit reads them once), so the
pre-loaded messages are written as that deployment's producer would write them: with trace
context and publish-time headers when telemetry is on.
"""

from __future__ import annotations

import os
import time

from benchmarks.throughput.preload import preload as pipelined_preload
from benchmarks.throughput.preload import producer_app

__all__ = ["preload"]


def preload(count: int) -> float:
    """``count`` no-op tasks, pipelined; the seconds it took."""
    app = producer_app("kit", os.environ["REDIS_URL"], {}, {})
    began = time.perf_counter()
    try:
        pipelined_preload(app, count)
    finally:
        app.close()
    return time.perf_counter() - began
