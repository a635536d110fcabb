"""Processing rate, steady state: no-op tasks and 10 ms I/O-bound tasks, per worker layout.

One worker start per layout and repetition serves both task kinds, in two phases:

1. the no-op tasks are pre-loaded before the workers start; the clock starts at the first
   processed task (start-up excluded) and stops when none is left (:func:`~benchmarks.core.measure.
   measure`);
2. the sleep tasks (``time.sleep(0.01)``) are then published, pipelined, into the same queue of
   the now idle workers, and measured the same way from the first one processed after the
   publish.

Runs are sized from each layout's expected rate (:meth:`~benchmarks.layouts.Layout.counts`) so
that every phase lasts about the same time whatever the layout's speed, and repetitions are
interleaved (A, B, C, A, B, C ...) so drift on the machine is shared by all layouts.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core.measure import BenchmarkError, Measurement, measure
from benchmarks.core.processes import PrivateRedis
from benchmarks.layouts.catalog import Layout, probe_for, start_workers, vet
from benchmarks.layouts.publishers import publisher_for

__all__ = ["KINDS", "PhaseRun", "RateSummary", "run_processing", "summarize_rates"]

KINDS = ("noop", "sleep")


@dataclass(frozen=True)
class PhaseRun:
    layout: str
    kind: str
    repeat: int
    order: int  # position of the worker start in the interleaved sequence
    measurement: Measurement
    log_errors: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        return self.measurement.rate

    def as_dict(self) -> dict[str, object]:
        return {
            "layout": self.layout,
            "kind": self.kind,
            "repeat": self.repeat,
            "order": self.order,
            **self.measurement.as_dict(),
            "log_errors": list(self.log_errors),
        }


@dataclass(frozen=True)
class RateSummary:
    key: str
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def low(self) -> float:
        return min(self.rates)

    @property
    def high(self) -> float:
        return max(self.rates)

    @property
    def spread_pct(self) -> float:
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "rates": self.rates,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread_pct": self.spread_pct,
        }


def summarize_rates(runs: Sequence[PhaseRun]) -> dict[tuple[str, str], RateSummary]:
    """(layout key, kind) -> its rates, in run order."""
    grouped: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        grouped.setdefault((run.layout, run.kind), []).append(run.rate)
    return {key: RateSummary(f"{key[0]}/{key[1]}", rates) for key, rates in grouped.items()}


def run_processing(
    redis: PrivateRedis,
    layouts: Sequence[Layout],
    *,
    seconds: float,
    minimum: int,
    repeat: int,
    workdir: Path,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[PhaseRun]:
    """Every layout ``repeat`` times, interleaved, each from an empty Redis."""
    runs: list[PhaseRun] = []
    total = repeat * len(layouts)
    for rep in range(repeat):
        for layout in layouts:
            order = len(runs) // len(KINDS)
            pair = run_once(
                redis,
                layout,
                seconds=seconds,
                minimum=minimum,
                repeat=rep,
                order=order,
                workdir=workdir,
            )
            runs.extend(pair)
            text = "; ".join(
                f"{r.kind} {r.rate:,.0f}/s ({r.measurement.counted} in "
                f"{r.measurement.elapsed:.2f} s)"
                for r in pair
            )
            progress(
                f"[{order + 1}/{total}] {layout.key}: {text}; "
                f"start-up {pair[0].measurement.startup:.1f} s"
            )
            for line in pair[0].log_errors:
                progress(f"    worker log error (not fatal): {line}")
    return runs


def run_once(
    redis: PrivateRedis,
    layout: Layout,
    *,
    seconds: float,
    minimum: int,
    repeat: int,
    order: int,
    workdir: Path,
) -> tuple[PhaseRun, PhaseRun]:
    noop_tasks, sleep_tasks = layout.counts(seconds, minimum)
    redis.flushall()
    publisher = publisher_for(layout.framework, redis.url, layout.kit_env, layout.conf)
    try:
        publisher.preload("noop", noop_tasks)
        probe = probe_for(layout, redis.client)
        if (queued := probe.remaining()) != noop_tasks:
            raise BenchmarkError(f"{layout.key}: pre-loaded {queued} tasks, expected {noop_tasks}")
        spawned_at = time.monotonic()
        tag = f"{order:03d}-processing-{layout.key}"
        with start_workers(layout, redis.url, workdir, tag) as workers:
            noop = measure(probe, workers, noop_tasks, spawned_at=spawned_at)
            published_at = time.monotonic()
            publisher.preload("sleep", sleep_tasks)
            sleep = measure(probe, workers, sleep_tasks, spawned_at=published_at)
            errors = workers.logged_errors()
        log_errors = vet(layout, redis, errors)
    finally:
        publisher.close()
    return (
        PhaseRun(layout.key, "noop", repeat, order, noop, log_errors),
        PhaseRun(layout.key, "sleep", repeat, order, sleep, log_errors),
    )
