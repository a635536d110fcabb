"""Producer-side enqueue rate into Redis, no worker running: what a web request pays to enqueue.

:data:`VARIANTS` (the ``enqueue`` command and the suite): stock Celery's ``apply_async`` loop (a
plain ``Celery()`` app, without and with a Redis result backend), then the kit's: a loop of
``apply_async``, a loop of ``enqueue_unique`` and one bulk ``enqueue_many`` call, each with
telemetry off and on, and Dramatiq's ``send`` and RQ's ``enqueue`` on the same Redis as a
reference point for what a Redis enqueue can cost (they run only when installed). The questions
are whether the kit's loop keeps 0.9 of stock Celery's, whether ``enqueue_unique`` (one ``SET NX
PX`` before the publish) keeps at least 0.8 of ``apply_async``'s rate, with telemetry off and
with it on, and whether ``enqueue_many`` is 20x the loop. :data:`BULK_VARIANTS` (the ``bulk``
command) put ``enqueue_many`` with and without ``unique=True`` beside the same loop, telemetry
off.

Every run is a fresh producer process (:mod:`benchmarks.enqueue.producer`) against an emptied
Redis, interleaved, and the Celery variants are checked to have published every message. With
telemetry on, the producer exports to the local receiver; the spans received per enqueue are
reported, since a producer whose span queue overflowed (spans dropped) would look cheaper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from benchmarks.core.jsonable import record
from benchmarks.core.measure import BenchmarkError, QueueProbe
from benchmarks.core.processes import child_env, run_producer
from benchmarks.core.rounds import Turn, interleave
from benchmarks.core.session import Session
from benchmarks.core.stats import RateSummary, summarize
from benchmarks.enqueue.producer import WARMUP

__all__ = [
    "BULK_VARIANTS",
    "VARIANTS",
    "EnqueueRun",
    "Variant",
    "run_enqueue",
    "summaries",
    "summary_dicts",
]

#: Same as the telemetry benchmark: metrics exported every 5 s.
METRIC_INTERVAL_MS = "5000"
PRODUCER = "benchmarks.enqueue.producer"
#: enqueue_many's tasks per run, as a multiple of the loop's (see ``Variant.scale``).
BULK_SCALE = 20
#: A run's fields in the bulk report's JSON (the enqueue report's adds spans and Redis keys).
BRIEF_FIELDS = ("variant", "repeat", "order", "count", "seconds", "rate")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    entry: str  # the function in benchmarks.enqueue.producer
    telemetry: bool = False
    requires: str | None = None  # module that must be importable (a reference library)
    env: Mapping[str, str] = field(default_factory=dict)
    #: Tasks per run, as a multiple of --tasks: bulk publishing is about twenty times faster,
    #: and a run of a tenth of a second measured one scheduler hiccup as much as the enqueue
    #: (27,000-37,000/s over three runs of 4,000): with this, a bulk run lasts about as long
    #: as a loop's.
    scale: int = 1

    def child_env(self, redis_url: str, endpoint: str | None) -> dict[str, str]:
        extra = {"REDIS_URL": redis_url, **self.env}
        if self.telemetry:
            if endpoint is None:
                raise BenchmarkError(f"{self.key} exports telemetry: it needs a receiver")
            extra.update(
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_METRIC_EXPORT_INTERVAL=METRIC_INTERVAL_MS,
            )
        else:
            extra["OTEL_SDK_DISABLED"] = "true"
        return child_env(extra)


VARIANTS: tuple[Variant, ...] = (
    Variant("plain-apply_async", "plain Celery apply_async", "plain_apply_async"),
    Variant(
        "plain-apply_async-results",
        "plain Celery apply_async, Redis result backend",
        "plain_apply_async_results",
    ),
    Variant("apply_async", "Celery apply_async (kit app)", "apply_async"),
    Variant("enqueue_unique", "kit enqueue_unique", "enqueue_unique"),
    Variant(
        "apply_async-otel",
        "Celery apply_async (kit app), telemetry on",
        "apply_async",
        telemetry=True,
    ),
    Variant(
        "enqueue_unique-otel", "kit enqueue_unique, telemetry on", "enqueue_unique", telemetry=True
    ),
    Variant("enqueue_many", "kit enqueue_many (bulk)", "enqueue_many", scale=BULK_SCALE),
    Variant(
        "enqueue_many-otel",
        "kit enqueue_many (bulk), telemetry on",
        "enqueue_many",
        telemetry=True,
        scale=BULK_SCALE,
    ),
    Variant("dramatiq", "Dramatiq send (reference)", "dramatiq_send", requires="dramatiq"),
    Variant("rq", "RQ enqueue (reference)", "rq_enqueue", requires="rq"),
)

BULK_VARIANTS: tuple[Variant, ...] = (
    Variant("loop", "apply_async loop", "apply_async"),
    Variant("enqueue_many", "enqueue_many", "enqueue_many"),
    Variant("enqueue_many_unique", "enqueue_many, unique=True", "enqueue_many_unique"),
)


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
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return record(self, *BRIEF_FIELDS, "spans", "metric_requests", "redis_keys")


def run_enqueue(
    bench: Session,
    variants: Sequence[Variant],
    *,
    tasks: int,
    repeat: int,
    unit: str = "enqueues/s",
) -> list[EnqueueRun]:
    """Every variant ``repeat`` times, interleaved, each into an empty Redis; the session's
    receiver (if any) is what the telemetry-on variants export to."""
    redis, sink = bench.redis, bench.receiver

    def run(variant: Variant, turn: Turn) -> EnqueueRun:
        redis.flushall()
        if sink is not None:
            sink.reset()
        count = tasks * variant.scale
        env = variant.child_env(redis.url, sink.endpoint if sink else None)
        result = run_producer(f"{PRODUCER}:{variant.entry}", count, env)
        if variant.requires is None:  # the kit's own: every call must have published a message
            published = QueueProbe.discover(redis.client).remaining()
            if published != count + WARMUP:
                raise BenchmarkError(
                    f"{variant.key}: {published} messages in Redis, expected {count + WARMUP}"
                )
        return EnqueueRun(
            variant=variant.key,
            repeat=turn.repeat,
            order=turn.order,
            count=count,
            seconds=float(str(result["seconds"])),
            spans=sink.spans() if sink else {},
            metric_requests=sink.metric_requests() if sink else 0,
            redis_keys=int(redis.client.dbsize()),
        )

    def describe(variant: Variant, run: EnqueueRun) -> list[str]:
        spans = f"; spans {run.spans}" if run.spans else ""
        return [
            f"{variant.key}: {run.rate:,.0f} {unit} ({run.count} in {run.seconds:.2f} s{spans})"
        ]

    return interleave(variants, repeat, run, describe)


def summaries(
    variants: Sequence[Variant], runs: Sequence[EnqueueRun]
) -> list[tuple[Variant, RateSummary]]:
    """Each variant that ran, in table order, with its rates."""
    rates = summarize((r.variant, r.rate) for r in runs)
    return [(v, rates[v.key]) for v in variants if v.key in rates]


def summary_dicts(found: Sequence[tuple[Variant, RateSummary]]) -> list[dict[str, object]]:
    """The summaries as the JSON files record them."""
    return [
        {"variant": v.key, "label": v.label, "telemetry": v.telemetry, **s.as_dict()}
        for v, s in found
    ]
