"""``python -m benchmarks all``: every benchmark in one run, against one private Redis.

This module runs the sections; :mod:`benchmarks.suite.targets` judges the figures and
:mod:`benchmarks.suite.command` writes the one table.

Sections, in order: enqueue rate (stock Celery's ``apply_async`` beside the kit's, bulk
``enqueue_many`` and the reference libraries), processing rate per worker layout (no-op, 10 ms
I/O, 5 ms CPU, and Redis commands per task), latency (which needs the processing rates: its
load is half of each layout's measured maximum), the cost of each kit concern (the
``throughput`` benchmark's scenarios: the kit's default worker with one concern switched off),
telemetry overhead, memory after 100,000 tasks, and the image path. Each section interleaves
its scenarios and repeats them (:attr:`SuiteConfig.repeat`), except memory (one long run) and
images (in-process medians). ``--only`` runs some sections;
latency on its own first measures its layouts' processing rates once.

:data:`FULL` is sized to finish in under ten minutes on a 2-CPU machine; :data:`QUICK` only
proves that every scenario runs and every row is reported (the CI smoke test).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.core.machine import available, library_versions
from benchmarks.core.rounds import Progress, stderr_progress
from benchmarks.core.session import Session, session
from benchmarks.enqueue.scenario import VARIANTS, EnqueueRun, Variant, run_enqueue
from benchmarks.images.scenario import DEFAULT_SIZE, DEFAULT_TARGETS, measure_images
from benchmarks.layouts.catalog import LAYOUTS, RECOMMENDED, Layout, select_layouts
from benchmarks.layouts.latency import LatencyRun, run_latency
from benchmarks.layouts.memory import MemoryRun, run_memory
from benchmarks.layouts.processing import PhaseRun, rates_by_layout, run_processing
from benchmarks.telemetry.scenario import (
    BASELINE,
    EXPORTING,
    TelemetryRun,
    closed_endpoint,
    run_telemetry,
    telemetry_scenarios,
)
from benchmarks.throughput.scenario import RunRecord, Scenario, run_throughput, select

__all__ = [
    "COSTS",
    "FULL",
    "LATENCY_LAYOUTS",
    "QUICK",
    "SECTIONS",
    "SuiteConfig",
    "SuiteResults",
    "run_suite",
]

SECTIONS = ("enqueue", "processing", "latency", "costs", "telemetry", "memory", "images")
#: The layouts whose latency is measured: the kit's two, stock Celery, and the references
#: that do not fork per job (RQ's forking worker is measured for rates only).
LATENCY_LAYOUTS = ("plain", "kit", RECOMMENDED, "dramatiq", "rq-simple")
MEMORY_LAYOUT = RECOMMENDED
#: The concerns whose cost the costs section measures: the throughput scenario that switches
#: each off alone (its baseline is the ``kit`` scenario, the default worker), and its name.
CONCERNS = {
    "kit-no-events": "task events",
    "kit-ignore-result": "result storage",
    "kit-early-ack": "late ack (vs early)",
    "kit-no-lease": "lease renewal",
    "kit-no-counters": "task counters",
    "kit-no-telemetry": "telemetry instrumentation, no endpoint (vs SDK off)",
}
COSTS = ("kit", *CONCERNS)  # the throughput scenarios the costs section runs


@dataclass(frozen=True)
class SuiteConfig:
    repeat: int = 3
    enqueue_tasks: int = 1000  # per run (enqueue_many: Variant.scale times as many)
    phase_seconds: float = 2.0  # each processing phase, at the layout's expected rate
    minimum_tasks: int = 30  # per processing phase, however slow the layout
    latency_idle_tasks: int = 75
    latency_load_seconds: float = 2.0
    cost_tasks: int = 1000  # per run of each costs scenario
    cost_scenarios: tuple[str, ...] = COSTS
    #: 5,000 (about 6 s at the kit's no-op rate on this project's VM): runs of 1,000 lasted
    #: about a second, where one slow second of the host moved a ratio by 10 %.
    telemetry_tasks: int = 5000
    memory_first: int = 1_000
    memory_total: int = 100_000
    memory_chunk: int = 10_000
    image_size: tuple[int, int] = DEFAULT_SIZE
    image_targets: tuple[int, ...] = DEFAULT_TARGETS
    image_repeat: int = 3
    #: Added to every Celery worker's command line (stock and kit): start-up only, no rate
    #: changes, so the quick run leaves out mingle's 1 s wait for other workers' replies.
    celery_flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = SuiteConfig()
QUICK = SuiteConfig(
    repeat=1,
    enqueue_tasks=30,
    phase_seconds=0.02,
    minimum_tasks=30,
    latency_idle_tasks=10,
    latency_load_seconds=0.2,
    cost_tasks=50,
    cost_scenarios=("kit", "kit-no-counters"),  # proves the table; every worker start costs 2 s
    telemetry_tasks=50,
    memory_first=100,
    memory_total=300,
    memory_chunk=100,
    image_size=(320, 240),
    image_targets=(120,),
    image_repeat=1,
    celery_flags=("--without-mingle",),
)


@dataclass
class SuiteResults:
    config: SuiteConfig
    facts: dict[str, object]
    layouts: list[Layout] = field(default_factory=list)
    skipped_layouts: list[Layout] = field(default_factory=list)
    enqueue_variants: list[Variant] = field(default_factory=list)
    skipped_variants: list[Variant] = field(default_factory=list)
    enqueue: list[EnqueueRun] = field(default_factory=list)
    processing: list[PhaseRun] = field(default_factory=list)
    latency: list[LatencyRun] = field(default_factory=list)
    costs: list[RunRecord] = field(default_factory=list)
    telemetry: list[TelemetryRun] = field(default_factory=list)
    memory: MemoryRun | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per section

    def noop_medians(self) -> dict[str, float]:
        return {
            key: s.median
            for (key, kind), s in rates_by_layout(self.processing).items()
            if kind == "noop"
        }


def run_suite(
    config: SuiteConfig,
    sections: Sequence[str],
    layout_keys: Sequence[str],
    progress: Progress = stderr_progress,
) -> SuiteResults:
    chosen, skipped = available(select_layouts(layout_keys) if layout_keys else LAYOUTS)
    layouts = [_flagged(layout, config) for layout in chosen]
    for layout in skipped:
        progress(f"skipping layout {layout.key}: {layout.requires} is not installed")
    with session(receiver=True) as bench:
        results = SuiteResults(config, {**bench.facts, **library_versions()}, layouts, skipped)
        for section in SECTIONS:
            if section not in sections:
                continue
            progress(f"== {section}")
            began = time.monotonic()
            _SECTION_RUNNERS[section](results, bench)
            results.seconds[section] = time.monotonic() - began
    return results


def _flagged(layout: Layout, config: SuiteConfig) -> Layout:
    """The layout with :attr:`SuiteConfig.celery_flags` on its Celery workers' command lines."""
    if not config.celery_flags or layout.framework not in ("plain", "kit"):
        return layout
    argv = tuple((*args, *config.celery_flags) for args in layout.argv)
    return dataclasses.replace(layout, argv=argv)


def _flagged_scenario(scenario: Scenario, config: SuiteConfig) -> Scenario:
    """The same for a throughput or telemetry scenario (one kit worker)."""
    args = (*scenario.worker_args, *config.celery_flags)
    return dataclasses.replace(scenario, worker_args=args)


def _enqueue(results: SuiteResults, bench: Session) -> None:
    variants, skipped = available(VARIANTS)
    results.enqueue_variants, results.skipped_variants = variants, skipped
    c = results.config
    results.enqueue = run_enqueue(bench, variants, tasks=c.enqueue_tasks, repeat=c.repeat)


def _rates(
    results: SuiteResults, bench: Session, layouts: Sequence[Layout], repeat: int
) -> list[PhaseRun]:
    c = results.config
    return run_processing(
        bench, layouts, seconds=c.phase_seconds, minimum=c.minimum_tasks, repeat=repeat
    )


def _processing(results: SuiteResults, bench: Session) -> None:
    results.processing = _rates(results, bench, results.layouts, results.config.repeat)


def _latency(results: SuiteResults, bench: Session) -> None:
    c = results.config
    chosen = [layout for layout in results.layouts if layout.key in LATENCY_LAYOUTS]
    layouts = chosen or list(results.layouts)  # explicit --layout choices outside the default
    measured = results.noop_medians()
    if missing := [layout for layout in layouts if layout.key not in measured]:
        # --only latency: the load needs each layout's maximum rate, measured once here.
        results.processing.extend(_rates(results, bench, missing, repeat=1))
    results.latency = run_latency(
        bench,
        layouts,
        results.noop_medians(),
        repeat=c.repeat,
        idle_tasks=c.latency_idle_tasks,
        load_seconds=c.latency_load_seconds,
    )


def _costs(results: SuiteResults, bench: Session) -> None:
    c = results.config
    scenarios = [_flagged_scenario(s, c) for s in select(c.cost_scenarios)]
    results.costs = run_throughput(bench, scenarios, tasks=c.cost_tasks, repeat=c.repeat)


def _telemetry(results: SuiteResults, bench: Session) -> None:
    c = results.config
    scenarios = tuple(
        _flagged_scenario(s, c)
        for s in telemetry_scenarios(bench.sink.endpoint, closed_endpoint())
        if s.key in (BASELINE, EXPORTING)
    )
    results.telemetry = run_telemetry(bench, scenarios, tasks=c.telemetry_tasks, repeat=c.repeat)


def _memory(results: SuiteResults, bench: Session) -> None:
    c = results.config
    layout = next(
        (x for x in results.layouts if x.key == MEMORY_LAYOUT),
        _flagged(select_layouts([MEMORY_LAYOUT])[0], c),
    )
    results.memory = run_memory(
        bench, layout, first=c.memory_first, total=c.memory_total, chunk=c.memory_chunk
    )


def _images(results: SuiteResults, _: Session) -> None:
    c = results.config
    results.images, _data = measure_images(c.image_size, c.image_targets, c.image_repeat)


_SECTION_RUNNERS: dict[str, Callable[[SuiteResults, Session], None]] = {
    "enqueue": _enqueue,
    "processing": _processing,
    "latency": _latency,
    "costs": _costs,
    "telemetry": _telemetry,
    "memory": _memory,
    "images": _images,
}
