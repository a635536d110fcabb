"""Latency from enqueue to handler start, p50/p95/p99, on an idle worker and at 50 % load.

Per layout and repetition, one worker start, then:

1. warm-up: a few stamped tasks, until they come back (the workers are ready and every pool
   process has run one);
2. idle: :data:`IDLE_TASKS` tasks, one every :data:`IDLE_GAP` seconds, far apart enough that
   each finds the workers idle;
3. load: tasks paced at half the layout's maximum processing rate (the no-op median the
   processing benchmark measured in the same run) for :data:`LOAD_SECONDS`.

The producer is the benchmark process itself, through each library's ordinary single enqueue
(:meth:`~benchmarks.layouts.publishers.Publisher.send_stamp`), which passes ``time.time()``
taken just before the call; the handler subtracts it from its own clock first thing
(:func:`benchmarks.core.bodies.stamp`). The latency therefore includes the enqueue call itself,
Redis, the worker's fetch and its dispatch to the pool. Whether the producer kept its pace is
reported (``achieved`` rate), since on two CPUs it competes with the workers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.core.bodies import KEY
from benchmarks.core.jsonable import record
from benchmarks.core.measure import STALL_TIMEOUT, START_TIMEOUT, BenchmarkError
from benchmarks.core.processes import PrivateRedis, WorkerGroup
from benchmarks.core.rounds import Turn, interleave
from benchmarks.core.session import Session
from benchmarks.layouts.catalog import Layout, start_workers, vet
from benchmarks.layouts.publishers import Publisher, publisher_for

__all__ = ["LatencyRun", "percentiles", "run_latency"]

IDLE_GAP = 0.02  # seconds between idle tasks: several times any layout's per-task time
IDLE_TASKS = 75
LOAD_SECONDS = 2.0
LOAD_FRACTION = 0.5
WARMUP_TASKS = 10
QUANTILES = (50, 95, 99)


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 (linear interpolation between closest ranks)."""
    if len(values_ms) < 2:
        only = values_ms[0] if values_ms else float("nan")
        return {f"p{q}": only for q in QUANTILES}
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {f"p{q}": cuts[q - 1] for q in QUANTILES}


@dataclass(frozen=True)
class LatencyRun:
    layout: str
    phase: str  # idle or load
    repeat: int
    order: int
    target_rate: float  # tasks/s the producer aimed at
    achieved_rate: float  # tasks/s it sent
    latencies_ms: list[float]

    @property
    def stats(self) -> dict[str, float]:
        return percentiles(self.latencies_ms)

    def as_dict(self) -> dict[str, object]:
        return {
            **record(self, "layout", "phase", "repeat", "order", "target_rate", "achieved_rate"),
            "tasks": len(self.latencies_ms),
            **self.stats,
            "max": max(self.latencies_ms, default=float("nan")),
        }


def run_latency(
    bench: Session,
    layouts: Sequence[Layout],
    max_rates: dict[str, float],
    *,
    repeat: int,
    idle_tasks: int = IDLE_TASKS,
    load_seconds: float = LOAD_SECONDS,
) -> list[LatencyRun]:
    """Every layout ``repeat`` times, interleaved; ``max_rates`` by layout key (tasks/s)."""

    def run(layout: Layout, turn: Turn) -> tuple[LatencyRun, LatencyRun]:
        return run_once(bench, layout, max_rates[layout.key], turn, idle_tasks, load_seconds)

    def describe(layout: Layout, pair: tuple[LatencyRun, LatencyRun]) -> list[str]:
        text = "; ".join(
            f"{r.phase} ({r.achieved_rate:,.0f}/s) "
            + " ".join(f"{k} {v:.1f}" for k, v in r.stats.items())
            + " ms"
            for r in pair
        )
        return [f"latency {layout.key}: {text}"]

    pairs = interleave(layouts, repeat, run, describe)
    return [phase for pair in pairs for phase in pair]


def run_once(
    bench: Session,
    layout: Layout,
    max_rate: float,
    turn: Turn,
    idle_tasks: int,
    load_seconds: float,
) -> tuple[LatencyRun, LatencyRun]:
    redis = bench.redis
    redis.flushall()
    publisher = publisher_for(layout, redis.url)
    load_rate = LOAD_FRACTION * max_rate
    load_tasks = max(idle_tasks, round(load_rate * load_seconds))
    try:
        tag = f"{turn.order:03d}-latency-{layout.key}"
        with start_workers(layout, redis.url, bench.workdir, tag) as workers:
            _paced(publisher, 1 / IDLE_GAP, WARMUP_TASKS)
            _collect(redis, workers, WARMUP_TASKS, START_TIMEOUT)
            idle_sent = _paced(publisher, 1 / IDLE_GAP, idle_tasks)
            idle = _collect(redis, workers, idle_tasks, STALL_TIMEOUT)
            load_sent = _paced(publisher, load_rate, load_tasks)
            load = _collect(redis, workers, load_tasks, STALL_TIMEOUT)
            errors = workers.logged_errors()
        vet(layout, redis, errors)
    finally:
        publisher.close()
    rep, order = turn.repeat, turn.order
    return (
        LatencyRun(layout.key, "idle", rep, order, 1 / IDLE_GAP, idle_sent, idle),
        LatencyRun(layout.key, "load", rep, order, load_rate, load_sent, load),
    )


def _paced(publisher: Publisher, rate: float, count: int) -> float:
    """Send ``count`` stamped tasks at ``rate`` per second (catching up, never bursting ahead,
    when a send runs late); the rate achieved."""
    interval = 1.0 / rate
    began = time.perf_counter()
    for index in range(count):
        delay = began + index * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        publisher.send_stamp()
    elapsed = time.perf_counter() - began  # count - 1 intervals, plus the last send
    return (count - 1) / elapsed if count > 1 and elapsed > 0 else 0.0


def _collect(redis: PrivateRedis, workers: WorkerGroup, count: int, timeout: float) -> list[float]:
    """Wait until ``count`` latencies are recorded; return them in ms and empty the list."""
    deadline = time.monotonic() + timeout
    while (got := int(redis.client.llen(KEY))) < count:
        code = workers.exit_code()
        if code is not None or time.monotonic() > deadline:
            problem = f"exited with {code}" if code is not None else f"timed out ({timeout} s)"
            raise BenchmarkError(
                f"`{workers.describe()}` {problem} with {got} of {count} latency stamps:\n"
                f"{workers.log_tail()}"
            )
        time.sleep(0.01)
    with redis.client.pipeline() as pipe:
        pipe.lrange(KEY, 0, -1)
        pipe.delete(KEY)
        raw, _ = pipe.execute()
    return [1000.0 * float(value) for value in raw]
