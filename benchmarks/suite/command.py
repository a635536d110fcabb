"""``python -m benchmarks all``: the whole suite's report, one table with every figure and a
pass/fail column, then the details; the README's benchmark table is this table.

Every rate is the median of the repetitions, with the min-max range and the spread
((max - min) / median) beside it; latencies are the median over repetitions of each run's
percentile. The targets (:mod:`benchmarks.suite.targets`) are printed beside the figure they
judge, and again as a list under the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.core.jsonable import json_safe
from benchmarks.core.report import document, table, write_report
from benchmarks.core.stats import RateSummary
from benchmarks.enqueue.scenario import summaries as enqueue_summaries
from benchmarks.enqueue.scenario import summary_dicts
from benchmarks.layouts.catalog import RECOMMENDED
from benchmarks.layouts.processing import rates_by_layout
from benchmarks.suite.run import FULL, QUICK, SECTIONS, SuiteResults, run_suite
from benchmarks.suite.targets import Target, latency_quantiles, targets, telemetry_rates
from benchmarks.telemetry.scenario import BASELINE, EXPORTING, span_section

__all__ = ["payload", "run", "suite_markdown"]

Row = tuple[str, str, str, str, str, str]
#: (section title, kind) of the processing rows, in table order
_PROCESSING = (("noop", "Processing, no-op"), ("sleep", "Processing, 10 ms I/O"))
_LATENCY = (("idle", "Latency, idle"), ("load", "Latency, 50 % load"))
_TELEMETRY = (
    (BASELINE, "kit default worker, telemetry off"),
    (EXPORTING, "kit default worker, traces + metrics over OTLP"),
)
#: Which row carries which target: (benchmark title, subject key) -> target key
_JUDGED = {
    ("Enqueue", "enqueue_many"): "bulk",
    ("Processing, no-op", "kit"): "kit-vs-plain",
    ("Processing, no-op", RECOMMENDED): "recommended-vs-dramatiq",
    ("Latency, idle", "kit"): "idle-latency",
    ("Telemetry, no-op", EXPORTING): "telemetry",
}


def run(args: argparse.Namespace, command: str) -> int:
    config = QUICK if args.quick else FULL
    if args.repeat:
        config = dataclasses.replace(config, repeat=args.repeat)
    began = time.monotonic()
    results = run_suite(config, args.only or SECTIONS, args.layout)
    wall = time.monotonic() - began
    text = suite_markdown(results, command) + f"Total wall time: {wall:.0f} s.\n"
    write_report(args.output_dir, "all", text, {**payload(results, command), "wall_seconds": wall})
    return 0


def _range(s: RateSummary) -> str:
    return f"{s.low:,.0f}-{s.high:,.0f} ({s.spread_pct:.0f}%)"


def _rows(results: SuiteResults, found: Sequence[Target]) -> list[Row]:
    by_key = {t.key: t for t in found}

    def row(title: str, key: str, label: str, figure: str, spread: str) -> Row:
        t = by_key.get(_JUDGED.get((title, key), ""))
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
    for kind, title in _PROCESSING:
        for layout in results.layouts:
            if (rate := rates.get((layout.key, kind))) is not None:
                rows.append(
                    row(title, layout.key, layout.label, f"{rate.median:,.0f}/s", _range(rate))
                )
    labels = {layout.key: layout.label for layout in results.layouts}
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
                        f"p50 {min(q['p50']):.1f}-{max(q['p50']):.1f} ms",
                    )
                )
    tele = telemetry_rates(results)
    for key, label in _TELEMETRY:
        if (s := tele.get(key)) is not None:
            rows.append(row("Telemetry, no-op", key, label, f"{s.median:,.0f}/s", _range(s)))
    if (m := results.memory) is not None:
        rows.append(
            row(
                "Memory",
                m.layout,
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


def machine_line(facts: dict[str, object]) -> str:
    return (
        f"{facts.get('usable_cpus')} CPUs ({facts.get('cpu_model')}), {facts.get('python')}, "
        f"Celery {facts.get('celery')}, kombu {facts.get('kombu')}, redis-py "
        f"{facts.get('redis_py')}, Redis {facts.get('redis_server')}, Dramatiq "
        f"{facts.get('dramatiq')}, RQ {facts.get('rq')}; load average at start "
        f"{facts.get('load_average_at_start')}; {facts.get('date_utc')}"
    )


def _details(results: SuiteResults) -> list[str]:
    layouts = [f"- `{x.key}`: {x.label}: {x.shape}" for x in results.layouts]
    layouts += [
        f"- skipped `{x.key}`: {x.requires} is not installed" for x in results.skipped_layouts
    ]
    layouts += [
        f"- skipped enqueue variant `{v.key}`: {v.requires} is not installed"
        for v in results.skipped_variants
    ]
    blocks = ["## Layouts\n\n" + "\n".join(layouts)]
    if results.latency:
        blocks.append(
            "## Latency runs (producer pace: target / achieved tasks/s)\n\n"
            + "\n".join(
                f"- {r.layout} {r.phase} #{r.repeat + 1}: {r.target_rate:,.0f} / "
                f"{r.achieved_rate:,.0f}; "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in r.stats.items())
                for r in results.latency
            )
        )
    if (m := results.memory) is not None:
        rest = m.total_tasks - m.first_tasks
        blocks.append(
            f"## Memory\n\n{m.processes} processes; the {rest:,} tasks after the "
            f"first reading took {m.seconds:.0f} s ({m.rate:,.0f} tasks/s sustained)."
        )
    blocks.append(span_section(results.telemetry))
    sections = ", ".join(f"{k} {v:.0f} s" for k, v in results.seconds.items())
    blocks.append(f"## Run\n\nWall time per section: {sections}.")
    return blocks


def suite_markdown(results: SuiteResults, command: str) -> str:
    found = targets(results)
    header = ["Benchmark", "Scenario", "Median", "Min-max (spread)", "Target", "Pass/fail"]
    verdicts = [f"- {t.verdict}: {t.text}: {t.shown}" for t in found] or ["- none measured"]
    return document(
        "celery-kit benchmarks",
        f"Machine: {machine_line(results.facts)}.\n"
        f"Command: `{command}`; {results.config.repeat} interleaved repetition(s) per "
        "scenario, median and min-max.",
        table(header, _rows(results, found), "llrrll"),
        "## Targets\n\n" + "\n".join(verdicts),
        *_details(results),
    )


def payload(results: SuiteResults, command: str) -> dict[str, Any]:
    rates = rates_by_layout(results.processing)
    cleaned: dict[str, Any] = json_safe(
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
            "enqueue": summary_dicts(enqueue_summaries(results.enqueue_variants, results.enqueue)),
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
