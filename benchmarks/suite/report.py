"""The whole suite's report: one table with every figure and a pass/fail column, then details.

Every rate is the median of the repetitions, with the min-max range and the spread
((max - min) / median) beside it; latencies are the median over repetitions of each run's
percentile. The issue's targets are printed beside the figure they judge. A target whose
verdict could flip within the run-to-run noise (the target lies inside the range the min and
max of the two sides allow) says so: on a shared 2-CPU machine, those verdicts are not to be
trusted either way.
"""

from __future__ import annotations

import math
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.enqueue.report import summarize_enqueue
from benchmarks.layouts.catalog import RECOMMENDED
from benchmarks.layouts.latency import LatencyRun
from benchmarks.layouts.processing import RateSummary, summarize_rates
from benchmarks.suite.run import SuiteResults
from benchmarks.telemetry.report import span_table
from benchmarks.telemetry.scenario import BASELINE, EXPORTING

__all__ = ["Target", "payload", "suite_markdown", "targets"]


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
        return {
            "key": self.key,
            "target": self.text,
            "value": self.value,
            "passed": self.passed,
            "within_noise": self.within_noise,
        }


def _ratio_target(
    key: str, text: str, top: RateSummary | None, bottom: RateSummary | None, minimum: float
) -> Target | None:
    if top is None or bottom is None:
        return None
    value = top.median / bottom.median
    low, high = top.low / bottom.high, top.high / bottom.low
    noisy = len(top.rates) > 1 and low < minimum <= high
    return Target(key, text, value, "x", value >= minimum, noisy)


def _latency(runs: Sequence[LatencyRun], layout: str, phase: str) -> dict[str, list[float]]:
    own = [r for r in runs if r.layout == layout and r.phase == phase]
    return {q: [r.stats[q] for r in own] for q in ("p50", "p95", "p99")} if own else {}


def targets(results: SuiteResults) -> list[Target]:
    enqueue = {
        s.variant.key: RateSummary(s.variant.key, s.rates)
        for s in summarize_enqueue(results.enqueue_variants, results.enqueue)
    }
    noop = {
        key: s for (key, kind), s in summarize_rates(results.processing).items() if kind == "noop"
    }
    tele = {
        key: RateSummary(
            key, [r.record.measurement.rate for r in results.telemetry if r.record.scenario == key]
        )
        for key in (BASELINE, EXPORTING)
        if any(r.record.scenario == key for r in results.telemetry)
    }
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
    p50 = _latency(results.latency, "kit", "idle").get("p50")
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


def _range(s: RateSummary, unit: str = "") -> str:
    return f"{s.low:,.0f}-{s.high:,.0f}{unit} ({s.spread_pct:.0f}%)"


def _rows(results: SuiteResults, found: Sequence[Target]) -> list[tuple[str, ...]]:
    by_key = {t.key: t for t in found}

    def judged(key: str) -> tuple[str, str]:
        t = by_key.get(key)
        return (f"{t.text}: {t.shown}", t.verdict) if t else ("", "")

    rows: list[tuple[str, ...]] = []
    for s in summarize_enqueue(results.enqueue_variants, results.enqueue):
        summary = RateSummary(s.variant.key, s.rates)
        target = judged("bulk") if s.variant.key == "enqueue_many" else ("", "")
        rows.append(("Enqueue", s.variant.label, f"{s.median:,.0f}/s", _range(summary), *target))
    rates = summarize_rates(results.processing)
    for kind, title in (("noop", "Processing, no-op"), ("sleep", "Processing, 10 ms I/O")):
        for layout in results.layouts:
            if (rate := rates.get((layout.key, kind))) is None:
                continue
            target = ("", "")
            if kind == "noop" and layout.key == "kit":
                target = judged("kit-vs-plain")
            elif kind == "noop" and layout.key == RECOMMENDED:
                target = judged("recommended-vs-dramatiq")
            rows.append((title, layout.label, f"{rate.median:,.0f}/s", _range(rate), *target))
    labels = {layout.key: layout.label for layout in results.layouts}
    for phase, title in (("idle", "Latency, idle"), ("load", "Latency, 50 % load")):
        for key in dict.fromkeys(r.layout for r in results.latency):
            q = _latency(results.latency, key, phase)
            if not q:
                continue
            med = {name: statistics.median(v) for name, v in q.items()}
            target = judged("idle-latency") if (key, phase) == ("kit", "idle") else ("", "")
            rows.append(
                (
                    title,
                    f"{labels.get(key, key)}: p50 / p95 / p99",
                    f"{med['p50']:.1f} / {med['p95']:.1f} / {med['p99']:.1f} ms",
                    f"p50 {min(q['p50']):.1f}-{max(q['p50']):.1f} ms",
                    *target,
                )
            )
    for key, label in (
        (BASELINE, "kit default worker, telemetry off"),
        (EXPORTING, "kit default worker, traces + metrics over OTLP"),
    ):
        tele = [r.record.measurement.rate for r in results.telemetry if r.record.scenario == key]
        if tele:
            target = judged("telemetry") if key == EXPORTING else ("", "")
            rows.append(
                (
                    "Telemetry, no-op",
                    label,
                    f"{statistics.median(tele):,.0f}/s",
                    _range(RateSummary(key, tele)),
                    *target,
                )
            )
    if (m := results.memory) is not None:
        rows.append(
            (
                "Memory",
                f"{m.layout}: RSS after {m.first_tasks:,} / {m.total_tasks:,} tasks",
                f"{m.rss_first / 2**20:.1f} / {m.rss_last / 2**20:.1f} MiB",
                f"x{m.ratio:.3f} (one run)",
                "",
                "",
            )
        )
    for row in results.images:
        if row["path"] == "kit":
            rows.append(
                (
                    "Images",
                    f"decode+resize to {row['target_width']} px vs naive",
                    f"{row['speedup_vs_naive']}x faster",
                    f"PSNR {row['psnr_db']} dB, SSIM {row['ssim']}",
                    "",
                    "",
                )
            )
    return rows


def machine_line(facts: dict[str, object]) -> str:
    return (
        f"{facts.get('usable_cpus')} CPUs ({facts.get('cpu_model')}), {facts.get('python')}, "
        f"Celery {facts.get('celery')}, kombu {facts.get('kombu')}, redis-py "
        f"{facts.get('redis_py')}, Redis {facts.get('redis_server')}, Dramatiq "
        f"{facts.get('dramatiq')}, RQ {facts.get('rq')}; load average at start "
        f"{facts.get('load_average_at_start')}; {facts.get('date_utc')}"
    )


def _details(results: SuiteResults) -> str:
    parts = ["## Layouts\n"]
    for layout in results.layouts:
        parts.append(f"- `{layout.key}`: {layout.label}: {layout.shape}")
    parts += [
        f"- skipped `{x.key}`: {x.requires} is not installed" for x in results.skipped_layouts
    ]
    parts += [
        f"- skipped enqueue variant `{v.key}`: {v.requires} is not installed"
        for v in results.skipped_variants
    ]
    if results.latency:
        parts.append("\n## Latency runs (producer pace: target / achieved tasks/s)\n")
        parts += [
            f"- {r.layout} {r.phase} #{r.repeat + 1}: {r.target_rate:,.0f} / "
            f"{r.achieved_rate:,.0f}; " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.stats.items())
            for r in results.latency
        ]
    if results.memory is not None:
        m = results.memory
        rest = m.total_tasks - m.first_tasks
        parts.append(
            f"\n## Memory\n\n{m.processes} processes; the {rest:,} tasks after the "
            f"first reading took {m.seconds:.0f} s ({m.rate:,.0f} tasks/s sustained)."
        )
    spans = span_table(results.telemetry)
    if spans:
        parts.append("\n" + spans.rstrip())
    sections = ", ".join(f"{k} {v:.0f} s" for k, v in results.seconds.items())
    parts.append(f"\n## Run\n\nWall time per section: {sections}.")
    return "\n".join(parts) + "\n"


def suite_markdown(results: SuiteResults, command: str) -> str:
    found = targets(results)
    lines = [
        "# celery-kit benchmarks",
        "",
        f"Machine: {machine_line(results.facts)}.",
        f"Command: `{command}`; {results.config.repeat} interleaved repetition(s) per "
        "scenario, median and min-max.",
        "",
        "| Benchmark | Scenario | Median | Min-max (spread) | Target | Pass/fail |",
        "|---|---|---:|---:|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results, found)]
    lines += ["", "## Targets", ""]
    lines += [f"- {t.verdict}: {t.text}: {t.shown}" for t in found] or ["- none measured"]
    return "\n".join(lines) + "\n\n" + _details(results)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def payload(results: SuiteResults, command: str) -> dict[str, Any]:
    rates = summarize_rates(results.processing)
    cleaned: dict[str, Any] = _clean(
        {
            "command": command,
            "machine": {**results.facts, "platform_node": platform.node()},
            "config": results.config.as_dict(),
            "section_seconds": results.seconds,
            "targets": [t.as_dict() for t in targets(results)],
            "layouts": [
                {
                    "key": x.key,
                    "label": x.label,
                    "shape": x.shape,
                    "argv": [list(a) for a in x.argv],
                }
                for x in results.layouts
            ],
            "skipped": [x.key for x in results.skipped_layouts]
            + [v.key for v in results.skipped_variants],
            "enqueue": [
                s.as_dict() for s in summarize_enqueue(results.enqueue_variants, results.enqueue)
            ],
            "processing": [{"layout": k[0], "kind": k[1], **s.as_dict()} for k, s in rates.items()],
            "latency": [r.as_dict() for r in results.latency],
            "telemetry": [r.as_dict() for r in results.telemetry],
            "memory": results.memory.as_dict() if results.memory else None,
            "images": results.images,
            "runs": {
                "enqueue": [r.as_dict() for r in results.enqueue],
                "processing": [r.as_dict() for r in results.processing],
            },
        }
    )
    return cleaned
