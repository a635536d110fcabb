"""The telemetry benchmark's report: rates, ratios to telemetry off, the target, span counts.

The ratio to ``off`` is what telemetry costs; the issue's target (>= 0.9 for exporting over
OTLP) is printed beside it so the table answers the question it was run for. Span counts per
task are a sanity check: a rate measured while spans were dropped (or never made) would
flatter telemetry, so the reader must see one ``run/`` span per task arrive.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.telemetry.scenario import BASELINE, EXPORTING, TARGET, TelemetryRun
from benchmarks.throughput.report import Summary, markdown, summarize, write_files
from benchmarks.throughput.scenario import Scenario

__all__ = ["telemetry_markdown", "telemetry_summaries", "write_telemetry"]

NAME = "telemetry"


def telemetry_summaries(
    scenarios: Sequence[Scenario], runs: Sequence[TelemetryRun]
) -> list[Summary]:
    return summarize(scenarios, [r.record for r in runs], baseline=BASELINE, reference=None)


def _target(s: Summary) -> str:
    if s.scenario.key != EXPORTING or s.vs_baseline is None:
        return ""
    verdict = "met" if s.vs_baseline >= TARGET else "NOT met"
    return f">= {TARGET:.2f}: {verdict}"


def table(summaries: Sequence[Summary]) -> str:
    lines = [
        "| Scenario | Telemetry set-up | Median tasks/s | Min-max tasks/s | Spread "
        "| vs telemetry off | Target |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        ratio = "n/a" if s.vs_baseline is None else f"{s.vs_baseline:.2f}x"
        lines.append(
            f"| {s.scenario.label} | {s.scenario.change} | {s.median:,.0f} "
            f"| {s.low:,.0f}-{s.high:,.0f} | {s.spread_pct:.1f}% | {ratio} | {_target(s)} |"
        )
    return "\n".join(lines)


def _per_task(count: int, tasks: int) -> str:
    return f"{count / tasks:.2f}"


def span_table(runs: Sequence[TelemetryRun]) -> str:
    exporting = [r for r in runs if r.producer_spans or r.worker_spans]
    if not exporting:
        return ""
    lines = [
        "## Spans received per task (sanity check)\n",
        "The pre-load's producer exports to the receiver whenever the scenario has an endpoint;",
        "the worker's spans reach it only in `otlp`. Expect 1.00 `apply_async` per task from",
        "the producer and 1.00 `run` per task from the worker.\n",
        "| Run | Scenario | producer spans/task | worker spans/task | worker metric requests |",
        "|---:|---|---|---|---:|",
    ]
    for run in exporting:
        tasks = run.record.measurement.total
        producer = (
            ", ".join(f"{k} {_per_task(v, tasks)}" for k, v in sorted(run.producer_spans.items()))
            or "none"
        )
        worker = (
            ", ".join(f"{k} {_per_task(v, tasks)}" for k, v in sorted(run.worker_spans.items()))
            or "none"
        )
        lines.append(
            f"| {run.record.order + 1} | {run.record.scenario} | {producer} "
            f"| {worker} | {run.metric_requests} |"
        )
    return "\n".join(lines) + "\n\n"


def ratio_lines(summaries: Sequence[Summary]) -> list[str]:
    """One line per scenario: its median over telemetry off's, with the target for otlp."""
    base = next((s for s in summaries if s.scenario.key == BASELINE), None)
    lines = []
    for s in summaries:
        if base is None or s is base or s.vs_baseline is None:
            continue
        target = f" (target {_target(s)})" if _target(s) else ""
        noise = (
            "; min-max ranges overlap: within noise"
            if len(s.rates) > 1 and (s.low <= base.high and base.low <= s.high)
            else ""
        )
        lines.append(f"{s.scenario.key} / {BASELINE}: {s.vs_baseline:.2f}{target}{noise}")
    return lines


def telemetry_markdown(
    summaries: Sequence[Summary],
    runs: Sequence[TelemetryRun],
    facts: Mapping[str, object],
    params: Mapping[str, object],
) -> str:
    ratios = "\n".join(f"- {line}" for line in ratio_lines(summaries))
    return markdown(
        summaries,
        [r.record for r in runs],
        facts,
        params,
        title="Telemetry cost on the kit's worker (no-op tasks)",
        main_table=f"{table(summaries)}\n\n{ratios}",
        extra=span_table(runs),
    )


def write_telemetry(
    output_dir: Path,
    summaries: Sequence[Summary],
    runs: Sequence[TelemetryRun],
    facts: Mapping[str, object],
    params: Mapping[str, object],
    text: str,
) -> tuple[Path, Path]:
    median_run_spans = [
        r.worker_spans.get("run", 0) / r.record.measurement.total
        for r in runs
        if r.record.scenario == EXPORTING
    ]
    payload = {
        "machine": dict(facts),
        "parameters": dict(params),
        "target_otlp_vs_off": TARGET,
        "summary": [
            {
                "scenario": s.scenario.key,
                "label": s.scenario.label,
                "change": s.scenario.change,
                "rates": s.rates,
                "median": s.median,
                "min": s.low,
                "max": s.high,
                "spread_pct": s.spread_pct,
                "median_vs_off": s.vs_baseline,
            }
            for s in summaries
        ],
        "otlp_run_spans_per_task_median": (
            statistics.median(median_run_spans) if median_run_spans else None
        ),
        "runs": [r.as_dict() for r in runs],
    }
    return write_files(output_dir, NAME, text, payload)
