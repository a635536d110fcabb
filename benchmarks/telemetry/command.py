"""``python -m benchmarks telemetry``: the kit's worker with telemetry off, exporting, a
collector that is down, and no endpoint.

The ratio to ``off`` is what telemetry costs; the target (>= 0.9 for exporting over OTLP) is
printed beside it so the table answers the question it was run for, with the span counts
after the raw rates as the check that nothing was dropped.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.core.report import document, rate_cells, table, times, write_report
from benchmarks.core.session import session
from benchmarks.core.stats import RateSummary, ratio
from benchmarks.telemetry.scenario import (
    BASELINE,
    EXPORTING,
    SPAN_WAIT,
    TARGET,
    closed_endpoint,
    cpu_section,
    run_telemetry,
    span_section,
    telemetry_scenarios,
)
from benchmarks.throughput.scenario import KIT_TASKS_MODULE as KIT_TASKS
from benchmarks.throughput.scenario import (
    log_errors_section,
    raw_rates_section,
    select,
    summaries,
    summary_dict,
    worker_params,
)

__all__ = ["run"]


def run(args: argparse.Namespace, command: str) -> int:
    with session(receiver=True) as bench:
        every = telemetry_scenarios(bench.sink.endpoint, closed_endpoint())
        scenarios = select(args.scenario, every)
        runs = run_telemetry(bench, scenarios, tasks=args.tasks, repeat=args.repeat)
    worker = "celery -A project worker, default flags and concurrency, KIT_IMPORTS=" + KIT_TASKS
    params = worker_params(command, args, scenarios, worker)
    params["pre-load"] = (
        "a producer subprocess with the scenario's OTEL_* settings (exporting to the receiver "
        "when the scenario has an endpoint), pipelined, off the clock"
    )
    params["receiver"] = "in-process OTLP/gRPC server (benchmarks.core.otlp_sink), counts only"
    params["span_wait_s"] = f"{SPAN_WAIT} (otlp only, after the clock stops, before the kill)"
    records = [r.record for r in runs]
    found = summaries(scenarios, records)
    base = next((s for scenario, s in found if scenario.key == BASELINE), None)
    rows, lines, summary = [], [], []
    for scenario, s in found:
        vs_off = ratio(s.median, base)
        target = _target(scenario.key, vs_off)
        rows.append([scenario.label, scenario.change, *rate_cells(s), times(vs_off), target])
        summary.append(summary_dict(scenario, s, median_vs_off=vs_off))
        if base is not None and vs_off is not None and scenario.key != BASELINE:
            lines.append(_ratio_line(scenario.key, vs_off, s, base))
    header = ["Scenario", "Telemetry set-up", "Median tasks/s", "Min-max tasks/s", "Spread"]
    text = document(
        "Telemetry cost on the kit's worker (no-op tasks)",
        # One block even when no ratio is printed: the report's blank lines stay as they were.
        table([*header, "vs telemetry off", "Target"], rows, "llrrrrl") + "\n\n" + "\n".join(lines),
        raw_rates_section(scenarios, records),
        cpu_section(runs),
        span_section(runs),
        log_errors_section(records),
        params=params,
        facts=bench.facts,
    )
    run_spans = [
        r.worker_spans.get("run", 0) / r.record.measurement.total
        for r in runs
        if r.record.scenario == EXPORTING
    ]
    payload = {
        "machine": bench.facts,
        "parameters": params,
        "target_otlp_vs_off": TARGET,
        "summary": summary,
        "otlp_run_spans_per_task_median": statistics.median(run_spans) if run_spans else None,
        "runs": [r.as_dict() for r in runs],
    }
    write_report(args.output_dir, "telemetry", text, payload)
    return 0


def _target(key: str, vs_off: float | None) -> str:
    if key != EXPORTING or vs_off is None:
        return ""
    return f">= {TARGET:.2f}: {'met' if vs_off >= TARGET else 'NOT met'}"


def _ratio_line(key: str, vs_off: float, s: RateSummary, base: RateSummary) -> str:
    """A scenario's median over telemetry off's, with the target for otlp."""
    target = f" (target {_target(key, vs_off)})" if key == EXPORTING else ""
    noise = "; min-max ranges overlap: within noise" if s.overlaps(base) else ""
    return f"- {key} / {BASELINE}: {vs_off:.2f}{target}{noise}"
