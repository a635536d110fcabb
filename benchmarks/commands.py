"""The ``telemetry`` and ``enqueue`` sub-commands: set up, run, print and save.

Kept apart from :mod:`benchmarks.__main__` (argument parsing) so each command's wiring (private
Redis, OTLP receiver, parameters recorded with the results) reads in one place.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.core.machine import machine_facts
from benchmarks.core.measure import POLL_INTERVAL, BenchmarkError
from benchmarks.core.otlp_sink import OTLPSink
from benchmarks.core.processes import private_redis
from benchmarks.enqueue.producer import WARMUP
from benchmarks.enqueue.report import enqueue_markdown, summarize_enqueue, write_enqueue
from benchmarks.enqueue.scenario import VARIANTS, available, run_enqueue
from benchmarks.telemetry.report import telemetry_markdown, telemetry_summaries, write_telemetry
from benchmarks.telemetry.scenario import (
    SPAN_WAIT,
    closed_endpoint,
    run_telemetry,
    telemetry_scenarios,
)

__all__ = ["enqueue_command", "telemetry_command"]


def telemetry_command(
    tasks: int, repeat: int, output_dir: Path, command: str, keys: Sequence[str] = ()
) -> int:
    with (
        private_redis() as redis,
        OTLPSink() as sink,
        tempfile.TemporaryDirectory(prefix="kit-bench-logs-") as logs,
    ):
        facts = machine_facts(redis.version())
        scenarios = telemetry_scenarios(sink.endpoint, closed_endpoint())
        if unknown := set(keys) - {s.key for s in scenarios}:
            raise BenchmarkError(f"unknown telemetry scenario(s) {sorted(unknown)}")
        scenarios = tuple(s for s in scenarios if not keys or s.key in keys)
        runs = run_telemetry(redis, sink, scenarios, tasks=tasks, repeat=repeat, workdir=Path(logs))
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "repeat": repeat,
        "order": f"{repeat} interleaved round(s) of: " + ", ".join(s.key for s in scenarios),
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "worker": "celery -A project worker, default flags and concurrency, "
        "KIT_IMPORTS=benchmarks.throughput.kit_tasks",
        "measure": "acknowledged messages (queue lists + unacked hash), first to last",
        "pre-load": "a producer subprocess with the scenario's OTEL_* settings (exporting to "
        "the receiver when the scenario has an endpoint), pipelined, off the clock",
        "receiver": "in-process OTLP/gRPC server (benchmarks.core.otlp_sink), counts only",
        "span_wait_s": f"{SPAN_WAIT} (otlp only, after the clock stops, before the kill)",
    }
    summaries = telemetry_summaries(scenarios, runs)
    text = telemetry_markdown(summaries, runs, facts, params)
    print(text)
    md_path, json_path = write_telemetry(output_dir, summaries, runs, facts, params, text)
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


def enqueue_command(tasks: int, repeat: int, output_dir: Path, command: str) -> int:
    variants, skipped = available(VARIANTS)
    for variant in skipped:
        print(f"skipping {variant.key}: {variant.requires} is not installed", file=sys.stderr)
    with private_redis() as redis, OTLPSink() as sink:
        facts = machine_facts(redis.version())
        runs = run_enqueue(redis, sink, variants, tasks=tasks, repeat=repeat)
    params: dict[str, object] = {
        "command": command,
        "enqueues_per_run": ", ".join(f"{v.key} {tasks * v.scale}" for v in variants),
        "warm_up": f"{WARMUP} untimed enqueues per run, after setup_telemetry('producer')",
        "repeat": repeat,
        "order": f"{repeat} interleaved round(s) of: " + ", ".join(v.key for v in variants),
        "producer": "python -m benchmarks.enqueue.producer, a fresh process per run, one thread; "
        "Celery through its producer pool (one reused connection), the kit's "
        "result backend on (each apply_async subscribes to its result channel)",
        "arguments": "distinct per task (bench.item(n)), so no enqueue_unique is a duplicate",
        "enqueue_many": "one call for the whole run (the kit batches and pipelines it)",
        "telemetry on": "setup_telemetry('producer'), OTLP/gRPC to an in-process receiver",
    }
    summaries = summarize_enqueue(variants, runs)
    text = enqueue_markdown(summaries, runs, skipped, facts, params)
    print(text)
    md_path, json_path = write_enqueue(output_dir, summaries, runs, skipped, facts, params, text)
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0
