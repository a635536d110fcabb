"""The rows of the suite's one table: a benchmark, a scenario, its figure, its spread, and
the target it carries (if any) with the verdict.

Which row carries which target is :data:`JUDGED`; every other row is a figure to read the
judged ones against (stock Celery, the peers, the kit's other layouts).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks.core.stats import RateSummary, summarize
from benchmarks.enqueue.scenario import summaries as enqueue_summaries
from benchmarks.layouts.catalog import RECOMMENDED
from benchmarks.layouts.processing import rates_by_layout
from benchmarks.suite.run import CONCERNS, SuiteResults
from benchmarks.suite.targets import Target, commands_per_task, latency_quantiles, telemetry_rates
from benchmarks.telemetry.scenario import BASELINE, EXPORTING

__all__ = ["PROCESSING", "Row", "concern_costs", "table_rows"]

Row = tuple[str, str, str, str, str, str]
#: (kind, section title) of the processing rows, in table order
PROCESSING = (
    ("noop", "Processing, no-op"),
    ("sleep", "Processing, 10 ms I/O"),
    ("cpu", "Processing, 5 ms CPU"),
)
_LATENCY = (("idle", "Latency, idle"), ("load", "Latency, 50 % load"))
_TELEMETRY = (
    (BASELINE, "kit default worker, telemetry off"),
    (EXPORTING, "kit default worker, traces + metrics over OTLP"),
)
COMMANDS_TITLE = "Redis commands per task (worker side, no-op)"
COST_TITLE = "Cost per task, kit default worker"
#: Which row carries which target: (benchmark title, subject key) -> target key
JUDGED = {
    ("Enqueue", "apply_async"): "producer",
    ("Enqueue", "enqueue_many"): "bulk",
    ("Processing, no-op", "kit"): "kit-vs-plain",
    ("Processing, no-op", RECOMMENDED): "recommended-vs-dramatiq",
    ("Processing, 10 ms I/O", "kit"): "kit-vs-plain-io",
    ("Processing, 10 ms I/O", RECOMMENDED): "recommended-vs-dramatiq-io",
    (COMMANDS_TITLE, "kit"): "redis-commands",
    ("Latency, idle", "kit"): "idle-latency",
    ("Telemetry, no-op", EXPORTING): "telemetry",
    ("Memory", "memory"): "memory",
}


def _range(s: RateSummary) -> str:
    return f"{s.low:,.0f}-{s.high:,.0f} ({s.spread_pct:.0f}%)"


def _cost(with_it: RateSummary, without: RateSummary) -> tuple[float, float, float]:
    """Microseconds per task the concern costs: (median, low, high) from the two rates."""

    def us(rate: float) -> float:
        return 1e6 / rate

    return (
        us(with_it.median) - us(without.median),
        us(with_it.high) - us(without.low),
        us(with_it.low) - us(without.high),
    )


def concern_costs(results: SuiteResults) -> list[tuple[str, str, tuple[float, float, float]]]:
    """(scenario key, concern, (median, low, high) microseconds per task) for each concern
    measured: the costs section's, then telemetry export (the telemetry section's)."""
    rates = summarize((r.scenario, r.measurement.rate) for r in results.costs)
    found = []
    if (base := rates.get("kit")) is not None:
        found += [
            (key, concern, _cost(base, rates[key]))
            for key, concern in CONCERNS.items()
            if key in rates
        ]
    tele = telemetry_rates(results)
    if (on := tele.get(EXPORTING)) is not None and (off := tele.get(BASELINE)) is not None:
        found.append((EXPORTING, "telemetry exporting over OTLP (vs SDK off)", _cost(on, off)))
    return found


def table_rows(results: SuiteResults, found: Sequence[Target]) -> list[Row]:
    by_key = {t.key: t for t in found}

    def row(title: str, key: str, label: str, figure: str, spread: str) -> Row:
        t = by_key.get(JUDGED.get((title, key), ""))
        return (
            title,
            label,
            figure,
            spread,
            *((f"{t.text}: {t.shown}", t.verdict) if t else ("", "")),
        )

    rows = [
        row("Enqueue", v.key, v.label, f"{s.median:,.0f}/s", _range(s))
        for v, s in enqueue_summaries(results.enqueue_variants, results.enqueue)
    ]
    rates = rates_by_layout(results.processing)
    for kind, title in PROCESSING:
        for layout in results.layouts:
            if (rate := rates.get((layout.key, kind))) is not None:
                rows.append(
                    row(title, layout.key, layout.label, f"{rate.median:,.0f}/s", _range(rate))
                )
    labels = {layout.key: layout.label for layout in results.layouts}
    for key, counts in commands_per_task(results).items():
        rows.append(
            row(
                COMMANDS_TITLE,
                key,
                labels.get(key, key),
                f"{statistics.median(counts):.1f}",
                f"{min(counts):.1f}-{max(counts):.1f}",
            )
        )
    for phase, title in _LATENCY:
        for key in dict.fromkeys(r.layout for r in results.latency):
            if q := latency_quantiles(results.latency, key, phase):
                med = {name: statistics.median(v) for name, v in q.items()}
                rows.append(
                    row(
                        title,
                        key,
                        f"{labels.get(key, key)}: p50 / p95 / p99",
                        f"{med['p50']:.1f} / {med['p95']:.1f} / {med['p99']:.1f} ms",
                        f"p99 {min(q['p99']):.1f}-{max(q['p99']):.1f} ms",
                    )
                )
    for key, concern, (us, low, high) in concern_costs(results):
        rows.append(row(COST_TITLE, key, concern, f"{us:,.0f} us", f"{low:,.0f} to {high:,.0f}"))
    tele = telemetry_rates(results)
    for key, label in _TELEMETRY:
        if (s := tele.get(key)) is not None:
            rows.append(row("Telemetry, no-op", key, label, f"{s.median:,.0f}/s", _range(s)))
    if (m := results.memory) is not None:
        rows.append(
            row(
                "Memory",
                "memory",
                f"{m.layout}: RSS after {m.first_tasks:,} / {m.total_tasks:,} tasks",
                f"{m.rss_first / 2**20:.1f} / {m.rss_last / 2**20:.1f} MiB",
                f"x{m.ratio:.3f} (one run)",
            )
        )
    for image in results.images:
        if image["path"] == "kit":
            rows.append(
                row(
                    "Images",
                    "kit",
                    f"decode+resize to {image['target_width']} px vs naive",
                    f"{image['speedup_vs_naive']}x faster",
                    f"PSNR {image['psnr_db']} dB, SSIM {image['ssim']}",
                )
            )
    return rows
