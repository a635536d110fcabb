"""What telemetry costs the kit's default worker, on no-op tasks, in four configurations.

* ``off``: OTEL_SDK_DISABLED=true, the baseline;
* ``otlp``: traces and metrics exported over OTLP/gRPC to a receiver that answers
  (:class:`~benchmarks.core.otlp_sink.OTLPSink`), the production set-up the issue's >= 0.9 target is
  about;
* ``collector-down``: the endpoint is configured but nothing listens, so every export fails and
  is retried in the exporters' threads: tasks must not wait on it;
* ``no-endpoint``: OTEL_* unset, where the kit installs no SDK providers (only the stock
  instrumentation that propagates trace context).

Messages are pre-loaded by a producer subprocess with the scenario's own OTEL_* settings, so
they carry what that deployment's producer writes (trace context, publish-time header) and the
worker pays for extracting it. That producer exports to the receiver whenever the scenario has
an endpoint (in ``collector-down`` too: the producer is off the clock; only the message shape
matters), which checks the producer spans as well. Its spans are counted, then the counts are
reset before the worker starts, so the worker's spans are counted on their own.

Workers are SIGKILLed at the end of a run (see :mod:`benchmarks.core.processes`), which would lose
the spans still in their batch processors; in ``otlp`` the benchmark first waits, clock stopped,
until one ``run/`` span per task has arrived or :data:`SPAN_WAIT` passes.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core.measure import BenchmarkError, QueueProbe, measure
from benchmarks.core.otlp_sink import OTLPSink
from benchmarks.core.processes import PrivateRedis, Worker, run_producer
from benchmarks.throughput.scenario import RunRecord, Scenario, vet_worker_log

__all__ = [
    "BASELINE",
    "EXPORTING",
    "TARGET",
    "TelemetryRun",
    "run_telemetry",
    "telemetry_scenarios",
]

BASELINE = "off"
EXPORTING = "otlp"
TARGET = 0.9  # the target for otlp / off
SPAN_WAIT = 15.0  # seconds at most; spans are exported every SPAN_DELAY_MS
#: Metrics every 5 s instead of the default 60 s: more export work than a default deployment
#: does, never less. The suite's runs (about 2 s on the clock) end before the first export, so
#: they measure metric recording, not export; at 1 s, exports would weigh 60 times what they
#: do in production (one per process per minute) and swamp the figure.
METRIC_INTERVAL_MS = "5000"
#: Span batches every 1 s instead of 5 s, for the same reason, and so the last spans of a run
#: arrive soon after it (the wait before the kill).
SPAN_DELAY_MS = "1000"
ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_ENDPOINT"


def closed_endpoint() -> str:
    """A loopback address nothing listens on: a port the kernel just gave us, closed again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def telemetry_scenarios(endpoint: str, dead_endpoint: str) -> tuple[Scenario, ...]:
    exported = {
        "OTEL_METRIC_EXPORT_INTERVAL": METRIC_INTERVAL_MS,
        "OTEL_BSP_SCHEDULE_DELAY": SPAN_DELAY_MS,
    }
    return (
        Scenario(
            BASELINE,
            "telemetry off",
            "OTEL_SDK_DISABLED=true",
            "kit",
            kit_env={"OTEL_SDK_DISABLED": "true"},
        ),
        Scenario(
            EXPORTING,
            "traces + metrics over OTLP/gRPC",
            f"{ENDPOINT_VAR}=<local receiver>, metrics every {METRIC_INTERVAL_MS} ms, "
            f"spans every {SPAN_DELAY_MS} ms",
            "kit",
            kit_env={ENDPOINT_VAR: endpoint, **exported},
        ),
        Scenario(
            "collector-down",
            "collector down",
            f"{ENDPOINT_VAR}=<closed port>, metrics every {METRIC_INTERVAL_MS} ms, "
            f"spans every {SPAN_DELAY_MS} ms",
            "kit",
            kit_env={ENDPOINT_VAR: dead_endpoint, **exported},
        ),
        Scenario("no-endpoint", "no endpoint configured", "OTEL_* unset (no SDK providers)", "kit"),
    )


@dataclass(frozen=True)
class TelemetryRun:
    record: RunRecord
    producer_spans: dict[str, int]  # by span kind (apply_async ...), from the pre-load
    worker_spans: dict[str, int]  # by span kind (run ...), from the worker
    metric_requests: int  # OTLP metric export requests from the worker

    def as_dict(self) -> dict[str, object]:
        return {
            **self.record.as_dict(),
            "producer_spans": self.producer_spans,
            "worker_spans": self.worker_spans,
            "worker_metric_requests": self.metric_requests,
        }


def run_telemetry(
    redis: PrivateRedis,
    sink: OTLPSink,
    scenarios: Sequence[Scenario],
    *,
    tasks: int,
    repeat: int,
    workdir: Path,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[TelemetryRun]:
    """Every scenario ``repeat`` times, interleaved, each from an empty Redis."""
    runs: list[TelemetryRun] = []
    total_runs = repeat * len(scenarios)
    for rep in range(repeat):
        for scenario in scenarios:
            order = len(runs)
            run = run_once(
                redis,
                sink,
                scenario,
                tasks=tasks,
                repeat=rep,
                order=order,
                log_path=workdir / f"{order:03d}-{scenario.key}.log",
            )
            runs.append(run)
            m = run.record.measurement
            spans = f"; run spans {run.worker_spans.get('run', 0)}" if run.worker_spans else ""
            progress(
                f"[{order + 1}/{total_runs}] {scenario.key}: {m.rate:,.0f} tasks/s "
                f"({m.counted} in {m.elapsed:.2f} s; start-up {m.startup:.1f} s{spans})"
            )
            for line in run.record.log_errors:
                progress(f"    worker log error (not fatal): {line}")
    return runs


def _preload(redis: PrivateRedis, sink: OTLPSink, scenario: Scenario, tasks: int) -> float:
    env = scenario.env(redis.url)
    if ENDPOINT_VAR in env:
        env[ENDPOINT_VAR] = sink.endpoint
        # Pipelined publishing outruns the default 2048-span queue; keep every producer span.
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = str(max(2048, tasks + 100))
    result = run_producer("preload", tasks, env)
    return float(str(result["seconds"]))


def run_once(
    redis: PrivateRedis,
    sink: OTLPSink,
    scenario: Scenario,
    *,
    tasks: int,
    repeat: int,
    order: int,
    log_path: Path,
) -> TelemetryRun:
    redis.flushall()
    sink.reset()
    preload_seconds = _preload(redis, sink, scenario, tasks)
    producer_spans = sink.spans()
    sink.reset()
    probe = QueueProbe.discover(redis.client)
    if (queued := probe.remaining()) != tasks:
        raise BenchmarkError(f"{scenario.key}: pre-loaded {queued} messages, expected {tasks}")
    spawned_at = time.monotonic()
    with Worker(scenario.command(), scenario.env(redis.url), log_path) as worker:
        measurement = measure(probe, worker, tasks, spawned_at=spawned_at)
        if scenario.key == EXPORTING:
            sink.wait_for_spans("run", tasks, SPAN_WAIT)
        errors = worker.logged_errors()
    record = RunRecord(
        scenario=scenario.key,
        repeat=repeat,
        order=order,
        measurement=measurement,
        preload_seconds=preload_seconds,
        results_stored=redis.keys_in_db(1),
        log_errors=vet_worker_log(redis, scenario.key, errors),
    )
    return TelemetryRun(record, producer_spans, sink.spans(), sink.metric_requests())
