"""The suite's targets, judged: each one a figure, what it must reach, and whether it did.

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
from benchmarks.layouts.processing import rates_by_layout
from benchmarks.suite.run import SuiteResults
from benchmarks.telemetry.scenario import BASELINE, EXPORTING

__all__ = ["Target", "latency_quantiles", "targets", "telemetry_rates"]


@dataclass(frozen=True)
class Target:
    key: str
    text: str  # what is required
    value: float  # the figure judged (a ratio, or ms)
    unit: str  # "x" or " ms"
    passed: bool
    within_noise: bool

    @property
    def verdict(self) -> str:
        word = "PASS" if self.passed else "FAIL"
        return f"{word} (within noise)" if self.within_noise else word

    @property
    def shown(self) -> str:
        return f"{self.value:.2f}{self.unit}"

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


def targets(results: SuiteResults) -> list[Target]:
    enqueue = {v.key: s for v, s in enqueue_summaries(results.enqueue_variants, results.enqueue)}
    noop = {
        key: s for (key, kind), s in rates_by_layout(results.processing).items() if kind == "noop"
    }
    tele = telemetry_rates(results)
    found = [
        _ratio_target(
            "telemetry",
            ">= 0.90x telemetry off (kit default worker, OTLP export)",
            tele.get(EXPORTING),
            tele.get(BASELINE),
            0.9,
        ),
        _ratio_target(
            "kit-vs-plain", ">= 0.90x plain Celery (no-op)", noop.get("kit"), noop.get("plain"), 0.9
        ),
        _ratio_target(
            "bulk",
            ">= 10x apply_async loop (telemetry off)",
            enqueue.get("enqueue_many"),
            enqueue.get("apply_async"),
            10.0,
        ),
        _ratio_target(
            "recommended-vs-dramatiq",
            ">= 1.00x Dramatiq (no-op)",
            noop.get(RECOMMENDED),
            noop.get("dramatiq"),
            1.0,
        ),
    ]
    p50 = latency_quantiles(results.latency, "kit", "idle").get("p50")
    if p50:
        value = statistics.median(p50)
        found.append(
            Target(
                "idle-latency",
                "p50 <= 5 ms (kit default worker, idle)",
                value,
                " ms",
                value <= 5.0,
                len(p50) > 1 and min(p50) <= 5.0 < max(p50),
            )
        )
    return [t for t in found if t is not None]
