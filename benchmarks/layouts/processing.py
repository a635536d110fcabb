"""Processing rate, steady state: no-op, 10 ms I/O-bound and 5 ms CPU-bound tasks, per layout;
and the Redis commands the workers send per task.

One worker start per layout and repetition serves every task kind, in phases:

1. the no-op tasks are pre-loaded before the workers start; the clock starts at the first
   processed task (start-up excluded) and stops when none is left
   (:func:`~benchmarks.core.measure.measure`). Over the same window, ``INFO commandstats``
   counts the Redis commands the workers sent (:mod:`benchmarks.core.commandstats`): nothing
   else talks to Redis then but the benchmark's probe, whose commands are left out;
2. the sleep tasks (``time.sleep(0.01)``), then the CPU-bound ones
   (:func:`benchmarks.core.bodies.cpu`), are published, pipelined, into the same queue of the
   now idle workers, and each measured the same way from the first one processed after its
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

from benchmarks.core.commandstats import CommandCount, CommandWindow
from benchmarks.core.jsonable import record
from benchmarks.core.measure import BenchmarkError, Measurement, measure
from benchmarks.core.rounds import Turn, interleave
from benchmarks.core.session import Session
from benchmarks.core.stats import RateSummary, summarize
from benchmarks.layouts.catalog import Layout, probe_for, start_workers, vet
from benchmarks.layouts.publishers import Kind, publisher_for

__all__ = ["KINDS", "PhaseRun", "commands_by_layout", "rates_by_layout", "run_processing"]

#: The phases, in order: the first is pre-loaded (and its Redis commands counted).
KINDS: tuple[Kind, ...] = ("noop", "sleep", "cpu")


@dataclass(frozen=True)
class PhaseRun:
    layout: str
    kind: str
    repeat: int
    order: int  # position of the worker start in the interleaved sequence
    measurement: Measurement
    log_errors: tuple[str, ...] = ()
    commands: CommandCount | None = None  # the pre-loaded (no-op) phase only

    @property
    def rate(self) -> float:
        return self.measurement.rate

    def as_dict(self) -> dict[str, object]:
        return {
            **record(self, "layout", "kind", "repeat", "order"),
            **self.measurement.as_dict(),
            "log_errors": list(self.log_errors),
            **({"redis_commands": self.commands.as_dict()} if self.commands else {}),
        }


def rates_by_layout(runs: Sequence[PhaseRun]) -> dict[tuple[str, str], RateSummary]:
    """(layout key, kind) -> its rates, in run order."""
    return summarize(((run.layout, run.kind), run.rate) for run in runs)


def commands_by_layout(runs: Sequence[PhaseRun]) -> dict[str, list[CommandCount]]:
    """Layout key -> the Redis command counts of its repetitions, in run order."""
    found: dict[str, list[CommandCount]] = {}
    for run in runs:
        if run.commands is not None:
            found.setdefault(run.layout, []).append(run.commands)
    return found


def run_processing(
    bench: Session, layouts: Sequence[Layout], *, seconds: float, minimum: int, repeat: int
) -> list[PhaseRun]:
    """Every layout ``repeat`` times, interleaved, each from an empty Redis."""

    def run(layout: Layout, turn: Turn) -> list[PhaseRun]:
        return run_once(bench, layout, seconds=seconds, minimum=minimum, turn=turn)

    def describe(layout: Layout, phases: list[PhaseRun]) -> list[str]:
        text = "; ".join(
            f"{r.kind} {r.rate:,.0f}/s ({r.measurement.counted} in {r.measurement.elapsed:.2f} s)"
            for r in phases
        )
        commands = phases[0].commands
        per_task = f"; {commands.per_task:.1f} Redis commands/task" if commands else ""
        return [
            f"{layout.key}: {text}; start-up {phases[0].measurement.startup:.1f} s{per_task}",
            *(f"    worker log error (not fatal): {line}" for line in phases[0].log_errors),
        ]

    runs = interleave(layouts, repeat, run, describe)
    return [phase for phases in runs for phase in phases]


def run_once(
    bench: Session, layout: Layout, *, seconds: float, minimum: int, turn: Turn
) -> list[PhaseRun]:
    redis = bench.redis
    counts = layout.counts(seconds, minimum)
    first, *rest = KINDS
    redis.flushall()
    publisher = publisher_for(layout, redis.url)
    measured: dict[str, Measurement] = {}
    try:
        publisher.preload(first, counts[first])
        probe = probe_for(layout, redis.client)
        if (queued := probe.remaining()) != counts[first]:
            raise BenchmarkError(
                f"{layout.key}: pre-loaded {queued} tasks, expected {counts[first]}"
            )
        window = CommandWindow(redis.client)
        window.start()  # the fallback, should no poll see the run under way
        spawned_at = time.monotonic()
        tag = f"{turn.order:03d}-processing-{layout.key}"
        with start_workers(layout, redis.url, bench.workdir, tag) as workers:
            measured[first] = measure(
                probe, workers, counts[first], spawned_at=spawned_at, on_start=window.start
            )
            m = measured[first]
            commands = window.finish(
                m.counted, m.clock_polls, probe.per_poll, from_first=m.within_one_poll
            )
            for kind in rest:
                published_at = time.monotonic()
                publisher.preload(kind, counts[kind])
                measured[kind] = measure(probe, workers, counts[kind], spawned_at=published_at)
            errors = workers.logged_errors()
        log_errors = vet(layout, redis, errors)
    finally:
        publisher.close()
    return [
        PhaseRun(
            layout.key,
            kind,
            turn.repeat,
            turn.order,
            measured[kind],
            log_errors,
            commands if kind == first else None,
        )
        for kind in KINDS
    ]
