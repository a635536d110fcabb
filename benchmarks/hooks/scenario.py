"""One measurement of the kit's middleware, in a process of its own (OpenTelemetry's global
providers can be set once per process): no-op tasks published through ``project.app``, then
run by an in-thread solo worker, with the app's pipeline timing every hook it calls.

The attempt's span receivers (``task_prerun``/``task_postrun`` of
:class:`~project.telemetry.consumer.ConsumerTracing`, which also record the attempt's
metrics) are timed the same way when telemetry is on.

An ``Empty`` middleware that overrides three hooks and does nothing is appended: its figure is
what the pipeline and the timer themselves cost per call, to read the others against.

Run as ``python -m benchmarks.hooks.scenario MODE TASKS REDIS_URL [OTLP_ENDPOINT]``; prints
one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

__all__ = ["MODES", "measure", "set_environment"]

#: off: telemetry disabled; otlp: exporting spans and metrics to an OTLP receiver.
MODES = ("off", "otlp")


def set_environment(
    mode: str, redis_url: str, endpoint: str | None, exporting: dict[str, str] | None = None
) -> None:
    """This process's settings for ``mode``, before the kit is imported (it reads them once):
    the private Redis, no catalog, and telemetry off or exporting to ``endpoint`` (with the
    ``exporting`` extras)."""
    os.environ.update({"REDIS_URL": redis_url, "KIT_CATALOG": ""})
    if mode == "otlp" and endpoint:
        os.environ.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_SDK_DISABLED": "false",  # whatever the calling environment says
                **(exporting or {}),
            }
        )
    else:
        os.environ["OTEL_SDK_DISABLED"] = "true"


def measure(mode: str, tasks: int, redis_url: str, endpoint: str | None) -> dict[str, Any]:
    set_environment(mode, redis_url, endpoint)
    from celery.contrib.testing.worker import start_worker

    import project
    from project.lifecycle.middleware import Middleware, Pipeline

    class Empty(Middleware):
        def before_publish(self, message: Any) -> None:
            pass

        def before_run(self, task: Any) -> None:
            return None

        def on_success(self, task: Any, retval: Any) -> None:
            pass

    app = project.app
    kit = project.kit_of(app)
    kit.pipeline = Pipeline([*kit.pipeline.middleware, Empty()], timed=True)

    @app.task(name="bench.hooks.noop", shared=False)
    def noop() -> None:
        return None

    if mode == "otlp":
        from project.telemetry import setup_telemetry

        setup_telemetry("worker", "bench-hooks", None, kit)
        _time_receivers(kit.pipeline.timings)
    results = [noop.delay() for _ in range(tasks)]
    producer = _per_task(kit.pipeline.timings, tasks)
    kit.pipeline.timings.clear()
    started = time.perf_counter()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=120):
        for result in results:
            result.get(timeout=300)
    elapsed = time.perf_counter() - started
    worker = _per_task(kit.pipeline.timings, tasks)
    return {
        "mode": mode,
        "tasks": tasks,
        "worker_tasks_per_second": round(tasks / elapsed, 1),
        "hooks": [
            {"side": side, **row}
            for side, rows in (("producer", producer), ("worker", worker))
            for row in rows
        ],
    }


def _time_receivers(timings: dict[tuple[str, str], list[float]]) -> None:
    """Time the attempt's span receivers too (``task_prerun``/``task_postrun``: the span and
    the attempt's metrics, which are not middleware), into the pipeline's timings."""
    from project.telemetry.setup import active_consumer

    consumer = active_consumer()
    if consumer is None:
        return
    consumer.uninstrument()
    for attribute, signal in (("_prerun", "task_prerun"), ("_postrun", "task_postrun")):
        inner = getattr(consumer, attribute)

        def timed(
            *args: Any, _inner: Any = inner, _key: Any = ("ConsumerTracing", signal), **kwargs: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                entry = timings[_key]
                entry[0] += 1
                entry[1] += time.perf_counter() - started

        setattr(consumer, attribute, timed)
    consumer.instrument()


def _per_task(timings: dict[tuple[str, str], list[float]], tasks: int) -> list[dict[str, Any]]:
    """Each (middleware, hook) that ran about once per task: microseconds per task."""
    return [
        {"middleware": middleware, "hook": hook, "us": round(seconds / tasks * 1e6, 1)}
        for (middleware, hook), (calls, seconds) in timings.items()
        if calls >= tasks / 2  # leave out start-up and shutdown hooks
    ]


if __name__ == "__main__":
    mode, tasks, url, *rest = sys.argv[1:]
    print(json.dumps(measure(mode, int(tasks), url, rest[0] if rest else None)))
