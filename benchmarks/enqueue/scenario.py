"""Producer-side enqueue rate into Redis, no worker running: what a web request pays to enqueue.

Variants: a loop of ``apply_async``, a loop of ``enqueue_unique`` and one bulk ``enqueue_many``
call, each with telemetry off and on; Dramatiq's ``send`` and RQ's ``enqueue`` for reference.

The issue's question is whether ``enqueue_unique`` (one ``SET NX PX`` before the publish) keeps
at least 0.8 of plain ``apply_async``'s rate, with telemetry off and with it on; so both are
measured both ways, interleaved, each run in a fresh producer process
(:mod:`benchmarks.enqueue.producer`) against an emptied Redis, with distinct arguments per task
so no ``enqueue_unique`` is a duplicate. Dramatiq's ``send`` and RQ's ``enqueue`` on the same
Redis are a reference point for what a Redis enqueue can cost; they run only when installed.

With telemetry on, the producer exports to the local receiver; the spans received per task are
reported, since a producer whose span queue overflowed (spans dropped) would look cheaper.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from benchmarks.core.measure import BenchmarkError, QueueProbe
from benchmarks.core.otlp_sink import OTLPSink
from benchmarks.core.processes import PrivateRedis, child_env, run_producer
from benchmarks.enqueue.producer import WARMUP

__all__ = ["VARIANTS", "EnqueueRun", "Variant", "available", "run_enqueue"]

#: Same as the telemetry benchmark: metrics exported every 5 s.
METRIC_INTERVAL_MS = "5000"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    entry: str  # benchmarks.enqueue.producer variant
    telemetry: bool
    requires: str | None = None  # module that must be importable (a reference library)
    env: Mapping[str, str] = field(default_factory=dict)
    #: Tasks per run, as a multiple of --tasks: bulk publishing is ten times faster, and a run
    #: of a few milliseconds would measure the clock more than the enqueue.
    scale: int = 1

    def child_env(self, redis_url: str, endpoint: str) -> dict[str, str]:
        extra = {"REDIS_URL": redis_url, **self.env}
        if self.telemetry:
            extra.update(
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_METRIC_EXPORT_INTERVAL=METRIC_INTERVAL_MS,
            )
        else:
            extra["OTEL_SDK_DISABLED"] = "true"
        return child_env(extra)


VARIANTS: tuple[Variant, ...] = (
    Variant("apply_async", "Celery apply_async (kit app)", "apply_async", telemetry=False),
    Variant("enqueue_unique", "kit enqueue_unique", "enqueue_unique", telemetry=False),
    Variant(
        "apply_async-otel",
        "Celery apply_async (kit app), telemetry on",
        "apply_async",
        telemetry=True,
    ),
    Variant(
        "enqueue_unique-otel", "kit enqueue_unique, telemetry on", "enqueue_unique", telemetry=True
    ),
    Variant("enqueue_many", "kit enqueue_many (bulk)", "enqueue_many", telemetry=False, scale=4),
    Variant(
        "enqueue_many-otel",
        "kit enqueue_many (bulk), telemetry on",
        "enqueue_many",
        telemetry=True,
        scale=4,
    ),
    Variant(
        "dramatiq",
        "Dramatiq send (reference)",
        "dramatiq_send",
        telemetry=False,
        requires="dramatiq",
    ),
    Variant("rq", "RQ enqueue (reference)", "rq_enqueue", telemetry=False, requires="rq"),
)


def available(variants: Sequence[Variant]) -> tuple[list[Variant], list[Variant]]:
    """(runnable, skipped): reference libraries are optional, not installed by the kit."""
    runnable: list[Variant] = []
    skipped: list[Variant] = []
    for variant in variants:
        missing = variant.requires and importlib.util.find_spec(variant.requires) is None
        (skipped if missing else runnable).append(variant)
    return runnable, skipped


@dataclass(frozen=True)
class EnqueueRun:
    variant: str
    repeat: int
    order: int
    count: int
    seconds: float
    spans: dict[str, int]  # received from the producer, by span kind
    metric_requests: int
    redis_keys: int  # keys in the broker database after the run (locks show up here)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "repeat": self.repeat,
            "order": self.order,
            "count": self.count,
            "seconds": self.seconds,
            "rate": self.rate,
            "spans": self.spans,
            "metric_requests": self.metric_requests,
            "redis_keys": self.redis_keys,
        }


def run_enqueue(
    redis: PrivateRedis,
    sink: OTLPSink,
    variants: Sequence[Variant],
    *,
    tasks: int,
    repeat: int,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[EnqueueRun]:
    """Every variant ``repeat`` times, interleaved, each into an empty Redis."""
    runs: list[EnqueueRun] = []
    total_runs = repeat * len(variants)
    for rep in range(repeat):
        for variant in variants:
            run = run_once(redis, sink, variant, tasks=tasks, repeat=rep, order=len(runs))
            runs.append(run)
            spans = f"; spans {run.spans}" if run.spans else ""
            progress(
                f"[{run.order + 1}/{total_runs}] {variant.key}: {run.rate:,.0f} enqueues/s "
                f"({run.count} in {run.seconds:.2f} s{spans})"
            )
    return runs


def run_once(
    redis: PrivateRedis,
    sink: OTLPSink,
    variant: Variant,
    *,
    tasks: int,
    repeat: int,
    order: int,
) -> EnqueueRun:
    redis.flushall()
    sink.reset()
    tasks *= variant.scale
    result = run_producer(variant.entry, tasks, variant.child_env(redis.url, sink.endpoint))
    if variant.requires is None:  # the kit's own: every call must have published a message
        published = QueueProbe.discover(redis.client).remaining()
        if published != tasks + WARMUP:
            raise BenchmarkError(
                f"{variant.key}: {published} messages in Redis, expected {tasks + WARMUP}"
            )
    return EnqueueRun(
        variant=variant.key,
        repeat=repeat,
        order=order,
        count=tasks,
        seconds=float(str(result["seconds"])),
        spans=sink.spans(),
        metric_requests=sink.metric_requests(),
        redis_keys=int(redis.client.dbsize()),
    )
