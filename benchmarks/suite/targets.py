"""The suite's targets, judged: each one a figure, what it must reach, and whether it did.

They are issue 16's "done when" (the constants below); the suite's table prints each beside
the figure it judges.

A target whose verdict could flip within the run-to-run noise (the target lies inside the
range the min and max of the two sides allow) says so: on a shared 2-CPU machine, those
verdicts are not to be trusted either way.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.core.jsonable import record
from benchmarks.core.stats import RateSummary, summarize
from benchmarks.enqueue.scenario import summaries as enqueue_summaries
from benchmarks.layouts.catalog import RECOMMENDED
from benchmarks.layouts.latency import LatencyRun
from benchmarks.layouts.processing import commands_by_layout, rates_by_layout
from benchmarks.suite.run import SuiteResults
from benchmarks.telemetry.scenario import BASELINE, EXPORTING

__all__ = ["Target", "commands_per_task", "latency_quantiles", "targets", "telemetry_rates"]

#: Issue 16's "done when": each figure and the bound it must reach.
KIT_VS_PLAIN = 1.0  # kit default worker / plain Celery defaults, no-op and 10 ms I/O
RECOMMENDED_VS_DRAMATIQ = {"noop": 0.75, "sleep": 0.95}
PRODUCER_VS_PLAIN = 0.9  # kit apply_async loop / stock Celery's, result backend on both
BULK_VS_LOOP = 20.0  # enqueue_many / the kit's apply_async loop
TELEMETRY_ON_VS_OFF = 0.95
IDLE_P99_MS = 3.0
MEMORY_GROWTH = 1.05  # RSS after 100,000 tasks / after 1,000


@dataclass(frozen=True)
class Target:
    key: str
    text: str  # what is required
    value: float  # the figure judged (a ratio, or ms)
    unit: str  # "x", " ms" or "" (a count)
    passed: bool
    within_noise: bool

    @property
    def verdict(self) -> str:
        word = "PASS" if self.passed else "FAIL"
        return f"{word} (within noise)" if self.within_noise else word

    @property
    def shown(self) -> str:
        return f"{self.value:.2f}{self.unit}" if self.unit else f"{self.value:.1f}"

    def as_dict(self) -> dict[str, object]:
        return record(self, "key", "target=text", "value", "passed", "within_noise")


def _ratio_target(
    key: str, text: str, top: RateSummary | None, bottom: RateSummary | None, minimum: float
) -> Target | None:
    if top is None or bottom is None:
        return None
    value = top.median / bottom.median
    low, high = top.low / bottom.high, top.high / bottom.low
    noisy = len(top.rates) > 1 and low < minimum <= high
    return Target(key, text, value, "x", value >= minimum, noisy)


def latency_quantiles(
    runs: Sequence[LatencyRun], layout: str, phase: str
) -> dict[str, list[float]]:
    """p50, p95, p99 of each repetition of one layout's phase (empty when it did not run)."""
    own = [r for r in runs if r.layout == layout and r.phase == phase]
    return {q: [r.stats[q] for r in own] for q in ("p50", "p95", "p99")} if own else {}


def telemetry_rates(results: SuiteResults) -> dict[str, RateSummary]:
    """The telemetry section's rates, by scenario key."""
    return summarize((r.record.scenario, r.record.measurement.rate) for r in results.telemetry)


def commands_per_task(results: SuiteResults) -> dict[str, list[float]]:
    """Redis commands per task of each layout's repetitions (the pre-loaded no-op phase)."""
    return {
        key: [c.per_task for c in counts]
        for key, counts in commands_by_layout(results.processing).items()
    }


def _at_most(
    key: str, text: str, values: list[float] | None, bound: float, unit: str = ""
) -> Target | None:
    """The median of ``values`` must not exceed ``bound``."""
    if not values:
        return None
    value = statistics.median(values)
    noisy = len(values) > 1 and min(values) <= bound < max(values)
    return Target(key, text, value, unit, value <= bound, noisy)


def _processing_targets(results: SuiteResults) -> list[Target | None]:
    rates = rates_by_layout(results.processing)
    found: list[Target | None] = []
    for kind, suffix, what in (("noop", "", "no-op"), ("sleep", "-io", "10 ms I/O")):
        found += [
            _ratio_target(
                f"kit-vs-plain{suffix}",
                f">= {KIT_VS_PLAIN:.2f}x plain Celery defaults ({what})",
                rates.get(("kit", kind)),
                rates.get(("plain", kind)),
                KIT_VS_PLAIN,
            ),
            _ratio_target(
                f"recommended-vs-dramatiq{suffix}",
                f">= {RECOMMENDED_VS_DRAMATIQ[kind]:.2f}x Dramatiq ({what})",
                rates.get((RECOMMENDED, kind)),
                rates.get(("dramatiq", kind)),
                RECOMMENDED_VS_DRAMATIQ[kind],
            ),
        ]
    commands = commands_per_task(results)
    if bound := commands.get("plain-results"):
        found.append(
            _at_most(
                "redis-commands",
                f"<= plain Celery with a result backend ({statistics.median(bound):.1f})",
                commands.get("kit"),
                statistics.median(bound),
            )
        )
    return found


def targets(results: SuiteResults) -> list[Target]:
    enqueue = {v.key: s for v, s in enqueue_summaries(results.enqueue_variants, results.enqueue)}
    tele = telemetry_rates(results)
    found = [
        _ratio_target(
            "producer",
            f">= {PRODUCER_VS_PLAIN:.2f}x plain Celery apply_async loop (with a result backend)",
            enqueue.get("apply_async"),
            enqueue.get("plain-apply_async-results"),
            PRODUCER_VS_PLAIN,
        ),
        _ratio_target(
            "bulk",
            f">= {BULK_VS_LOOP:.0f}x apply_async loop (telemetry off)",
            enqueue.get("enqueue_many"),
            enqueue.get("apply_async"),
            BULK_VS_LOOP,
        ),
        *_processing_targets(results),
        _at_most(
            "idle-latency",
            f"p99 <= {IDLE_P99_MS:.0f} ms (kit default worker, idle)",
            latency_quantiles(results.latency, "kit", "idle").get("p99"),
            IDLE_P99_MS,
            " ms",
        ),
        _ratio_target(
            "telemetry",
            f">= {TELEMETRY_ON_VS_OFF:.2f}x telemetry off (kit default worker, OTLP export)",
            tele.get(EXPORTING),
            tele.get(BASELINE),
            TELEMETRY_ON_VS_OFF,
        ),
    ]
    if (m := results.memory) is not None:
        found.append(
            Target(
                "memory",
                f"<= {MEMORY_GROWTH:.2f}x the RSS after {m.first_tasks:,} tasks",
                m.ratio,
                "x",
                m.ratio <= MEMORY_GROWTH,
                False,
            )
        )
    return [t for t in found if t is not None]
