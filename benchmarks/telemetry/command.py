"""``python -m benchmarks telemetry``: the kit's worker with telemetry off, exporting, a
collector that is down, and no endpoint.

The ratio to ``off`` is what telemetry costs; the target (>= 0.9 for exporting over OTLP) is
printed beside it so the table answers the question it was run for, with the span counts
after the raw rates as the check that nothing was dropped.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from benchmarks.core.measure import POLL_INTERVAL
from benchmarks.core.report import document, table, times, write_report
from benchmarks.core.rounds import order_note
from benchmarks.core.session import session
from benchmarks.core.stats import RateSummary, ratio, summarize
from benchmarks.telemetry.scenario import (
    BASELINE,
    EXPORTING,
    SPAN_WAIT,
    TARGET,
    TelemetryRun,
    closed_endpoint,
    run_telemetry,
    span_section,
    telemetry_scenarios,
)
from benchmarks.throughput.scenario import (
    Scenario,
    log_errors_section,
    raw_rates_section,
    select,
)

__all__ = ["run"]


def run(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks
    with session(receiver=True) as bench:
        scenarios = select(
            args.scenario, telemetry_scenarios(bench.sink.endpoint, closed_endpoint())
        )
        runs = run_telemetry(
            bench.redis,
            bench.sink,
            scenarios,
            tasks=tasks,
            repeat=args.repeat,
            workdir=bench.workdir,
        )
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "repeat": args.repeat,
        "order": order_note(args.repeat, (s.key for s in scenarios)),
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "worker": "celery -A project worker, default flags and concurrency, "
        "KIT_IMPORTS=benchmarks.throughput.kit_tasks",
        "measure": "acknowledged messages (queue lists + unacked hash), first to last",
        "pre-load": "a producer subprocess with the scenario's OTEL_* settings (exporting to "
        "the receiver when the scenario has an endpoint), pipelined, off the clock",
        "receiver": "in-process OTLP/gRPC server (benchmarks.core.otlp_sink), counts only",
        "span_wait_s": f"{SPAN_WAIT} (otlp only, after the clock stops, before the kill)",
    }
    records = [r.record for r in runs]
    rates = summarize((r.scenario, r.measurement.rate) for r in records)
    text = document(
        "Telemetry cost on the kit's worker (no-op tasks)",
        # One block even when no ratio is printed: the report's blank lines stay as they were.
        _table(scenarios, rates) + "\n\n" + "\n".join(_ratio_lines(scenarios, rates)),
        raw_rates_section(scenarios, records),
        span_section(runs),
        log_errors_section(records),
        params=params,
        facts=bench.facts,
    )
    write_report(
        args.output_dir, "telemetry", text, _payload(scenarios, rates, runs, bench.facts, params)
    )
    return 0


def _target(key: str, vs_off: float | None) -> str:
    if key != EXPORTING or vs_off is None:
        return ""
    return f">= {TARGET:.2f}: {'met' if vs_off >= TARGET else 'NOT met'}"


def _table(scenarios: Sequence[Scenario], rates: dict[str, RateSummary]) -> str:
    rows = []
    for scenario in scenarios:
        if (s := rates.get(scenario.key)) is not None:
            vs_off = ratio(s.median, rates.get(BASELINE))
            rows.append(
                [
                    scenario.label,
                    scenario.change,
                    f"{s.median:,.0f}",
                    f"{s.low:,.0f}-{s.high:,.0f}",
                    f"{s.spread_pct:.1f}%",
                    times(vs_off),
                    _target(scenario.key, vs_off),
                ]
            )
    header = ["Scenario", "Telemetry set-up", "Median tasks/s", "Min-max tasks/s", "Spread"]
    return table([*header, "vs telemetry off", "Target"], rows, "llrrrrl")


def _ratio_lines(scenarios: Sequence[Scenario], rates: dict[str, RateSummary]) -> list[str]:
    """One line per scenario: its median over telemetry off's, with the target for otlp."""
    base = rates.get(BASELINE)
    lines = []
    for scenario in scenarios:
        s = rates.get(scenario.key)
        if base is None or s is None or scenario.key == BASELINE:
            continue
        vs_off = s.median / base.median
        target = f" (target {_target(scenario.key, vs_off)})" if scenario.key == EXPORTING else ""
        noise = "; min-max ranges overlap: within noise" if s.overlaps(base) else ""
        lines.append(f"- {scenario.key} / {BASELINE}: {vs_off:.2f}{target}{noise}")
    return lines


def _payload(
    scenarios: Sequence[Scenario],
    rates: dict[str, RateSummary],
    runs: Sequence[TelemetryRun],
    facts: dict[str, object],
    params: dict[str, object],
) -> dict[str, object]:
    run_spans = [
        r.worker_spans.get("run", 0) / r.record.measurement.total
        for r in runs
        if r.record.scenario == EXPORTING
    ]
    summary = [
        {
            "scenario": scenario.key,
            "label": scenario.label,
            "change": scenario.change,
            **s.as_dict(),
            "median_vs_off": ratio(s.median, rates.get(BASELINE)),
        }
        for scenario in scenarios
        if (s := rates.get(scenario.key)) is not None
    ]
    return {
        "machine": facts,
        "parameters": params,
        "target_otlp_vs_off": TARGET,
        "summary": summary,
        "otlp_run_spans_per_task_median": statistics.median(run_spans) if run_spans else None,
        "runs": [r.as_dict() for r in runs],
    }
