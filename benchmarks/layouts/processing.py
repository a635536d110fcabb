"""Processing rate, steady state: no-op tasks and 10 ms I/O-bound tasks, per worker layout.

One worker start per layout and repetition serves both task kinds, in two phases:

1. the no-op tasks are pre-loaded before the workers start; the clock starts at the first
   processed task (start-up excluded) and stops when none is left
   (:func:`~benchmarks.core.measure.measure`);
2. the sleep tasks (``time.sleep(0.01)``) are then published, pipelined, into the same queue of
   the now idle workers, and measured the same way from the first one processed after the
   publish.

Runs are sized from each layout's expected rate
(:meth:`~benchmarks.layouts.catalog.Layout.counts`) so that every phase lasts about the same
time whatever the layout's speed, and repetitions are interleaved
(:mod:`benchmarks.core.rounds`) so drift on the machine is shared by all layouts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.core.jsonable import record
from benchmarks.core.measure import BenchmarkError, Measurement, measure
from benchmarks.core.rounds import Turn, interleave
from benchmarks.core.session import Session
from benchmarks.core.stats import RateSummary, summarize
from benchmarks.layouts.catalog import Layout, probe_for, start_workers, vet
from benchmarks.layouts.publishers import publisher_for

__all__ = ["KINDS", "PhaseRun", "rates_by_layout", "run_processing"]

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
            **record(self, "layout", "kind", "repeat", "order"),
            **self.measurement.as_dict(),
            "log_errors": list(self.log_errors),
        }


def rates_by_layout(runs: Sequence[PhaseRun]) -> dict[tuple[str, str], RateSummary]:
    """(layout key, kind) -> its rates, in run order."""
    return summarize(((run.layout, run.kind), run.rate) for run in runs)


def run_processing(
    bench: Session, layouts: Sequence[Layout], *, seconds: float, minimum: int, repeat: int
) -> list[PhaseRun]:
    """Every layout ``repeat`` times, interleaved, each from an empty Redis."""

    def run(layout: Layout, turn: Turn) -> tuple[PhaseRun, PhaseRun]:
        return run_once(bench, layout, seconds=seconds, minimum=minimum, turn=turn)

    def describe(layout: Layout, pair: tuple[PhaseRun, PhaseRun]) -> list[str]:
        text = "; ".join(
            f"{r.kind} {r.rate:,.0f}/s ({r.measurement.counted} in {r.measurement.elapsed:.2f} s)"
            for r in pair
        )
        return [
            f"{layout.key}: {text}; start-up {pair[0].measurement.startup:.1f} s",
            *(f"    worker log error (not fatal): {line}" for line in pair[0].log_errors),
        ]

    pairs = interleave(layouts, repeat, run, describe)
    return [phase for pair in pairs for phase in pair]


def run_once(
    bench: Session, layout: Layout, *, seconds: float, minimum: int, turn: Turn
) -> tuple[PhaseRun, PhaseRun]:
    redis = bench.redis
    noop_tasks, sleep_tasks = layout.counts(seconds, minimum)
    redis.flushall()
    publisher = publisher_for(layout, redis.url)
    try:
        publisher.preload("noop", noop_tasks)
        probe = probe_for(layout, redis.client)
        if (queued := probe.remaining()) != noop_tasks:
            raise BenchmarkError(f"{layout.key}: pre-loaded {queued} tasks, expected {noop_tasks}")
        spawned_at = time.monotonic()
        tag = f"{turn.order:03d}-processing-{layout.key}"
        with start_workers(layout, redis.url, bench.workdir, tag) as workers:
            noop = measure(probe, workers, noop_tasks, spawned_at=spawned_at)
            published_at = time.monotonic()
            publisher.preload("sleep", sleep_tasks)
            sleep = measure(probe, workers, sleep_tasks, spawned_at=published_at)
            errors = workers.logged_errors()
        log_errors = vet(layout, redis, errors)
    finally:
        publisher.close()
    return (
        PhaseRun(layout.key, "noop", turn.repeat, turn.order, noop, log_errors),
        PhaseRun(layout.key, "sleep", turn.repeat, turn.order, sleep, log_errors),
    )
