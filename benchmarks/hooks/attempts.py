"""What one whole attempt costs in CPU, telemetry off and exporting over OTLP, measured where the
machine's noise does not reach: a tight loop of Celery's own tracer in one process.

The worker benchmarks' rates swing by 20-60 % between repetitions on a shared 2-CPU VM, far
more than the few percent telemetry is allowed to cost, so their ratio says little about a
change of ten microseconds. Here Celery's tracer (``build_tracer``, what a pool process runs
for each message) runs a no-op kit task ``ATTEMPTS`` times with a request like a worker's
(delivery info, time limits, the producer's ``traceparent`` when telemetry is on), every
middleware hook and the attempt's span receivers included, no result stored and no broker in
the loop. It reports the CPU of the task's thread per attempt, and of the whole process (the
span export thread and gRPC's threads too, after a flush that exports every span), and the
garbage collector's passes per generation during the loop.

Run as ``python -m benchmarks.hooks.attempts MODE ATTEMPTS REDIS_URL [OTLP_ENDPOINT]``;
prints one JSON document on stdout.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import uuid
from typing import Any

from benchmarks.hooks.scenario import set_environment

__all__ = ["WARMUP", "measure"]

#: Attempts run before the clock starts (caches of the kit's profiles and encoders filled).
WARMUP = 200


def measure(mode: str, attempts: int, redis_url: str, endpoint: str | None) -> dict[str, Any]:
    # Every span of the loop kept until the flush (the loop outruns the export batches).
    queue = {"OTEL_BSP_MAX_QUEUE_SIZE": str(attempts + WARMUP + 100)}
    set_environment(mode, redis_url, endpoint, queue)
    from celery.app.trace import build_tracer
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    import project

    app = project.app

    @app.task(name="bench.attempts.noop", ignore_result=True, shared=False)
    def noop() -> None:
        return None

    headers: dict[str, str] = {}
    if mode == "otlp":
        from project.telemetry import setup_telemetry

        setup_telemetry("worker", "bench-attempts", None, project.kit_of(app))
        producer = SpanContext(uuid.uuid4().int, 0xB7AD6B7169203331, True, TraceFlags(1))
        propagate.inject(headers, context=trace.set_span_in_context(NonRecordingSpan(producer)))
    # One producer: its reply-to address (its app's oid, like Celery's) is the same on all.
    reply_to = str(uuid.uuid4())
    requests = [
        _request(str(uuid.uuid4()), noop.name, reply_to, headers) for _ in range(WARMUP + attempts)
    ]
    trace_task = build_tracer(noop.name, noop, app=app, propagate=False)
    for request in requests[:WARMUP]:
        trace_task(request["id"], (), {}, request)
    collected = [generation["collections"] for generation in gc.get_stats()]
    process_began, thread_began = time.process_time(), time.thread_time()
    for request in requests[WARMUP:]:
        trace_task(request["id"], (), {}, request)
    thread_seconds = time.thread_time() - thread_began
    collections = [g["collections"] - c for g, c in zip(gc.get_stats(), collected, strict=True)]
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()
    process_seconds = time.process_time() - process_began
    return {
        "mode": mode,
        "attempts": attempts,
        "thread_us": round(thread_seconds / attempts * 1e6, 1),
        "process_us": round(process_seconds / attempts * 1e6, 1),
        # The cyclic collector's passes per generation during the loop: what the attempt's
        # objects that outlive it (queued spans, logged measurements) cost it.
        "gc_collections": collections,
    }


def _request(task_id: str, name: str, reply_to: str, headers: dict[str, str]) -> dict[str, Any]:
    """What a worker's request holds for a plain message from the kit's producer."""
    return {
        "id": task_id,
        "task": name,
        "correlation_id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "lang": "py",
        "retries": 0,
        "timelimit": (360, 300),
        "hostname": "celery@bench",
        "origin": "gen1@web",
        "reply_to": reply_to,
        "delivery_info": {
            "exchange": "",
            "routing_key": "default",
            "priority": 0,
            "redelivered": False,
        },
        **headers,
    }


if __name__ == "__main__":
    mode, count, url, *rest = sys.argv[1:]
    print(json.dumps(measure(mode, int(count), url, rest[0] if rest else None)))
    sys.stdout.flush()
    os._exit(0)  # the exporters' threads and gRPC's are not waited for: the figures are out
