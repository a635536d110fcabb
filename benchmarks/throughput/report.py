"""Turning runs into a table: medians, spreads and ratios, as Markdown and JSON.

The median, not the mean: one run slowed by a noisy neighbour should not move the result. The
min-max spread is printed next to it so a reader can tell a real difference between scenarios
from noise: when two spreads overlap, the medians' order is not to be trusted. Ratios are to
stock Celery (what the kit costs) and to the kit's default (what one reverted setting buys).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.throughput.scenario import RunRecord, Scenario

__all__ = ["Summary", "markdown", "raw_table", "summarize", "write_files", "write_results"]

BASELINE = "plain"
REFERENCE = "kit"


@dataclass(frozen=True)
class Summary:
    scenario: Scenario
    rates: list[float]
    median: float
    low: float
    high: float
    vs_baseline: float | None  # median over the baseline scenario's median
    vs_reference: float | None

    @property
    def spread_pct(self) -> float:
        return 100.0 * (self.high - self.low) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.key,
            "label": self.scenario.label,
            "change": self.scenario.change,
            "rates": self.rates,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread_pct": self.spread_pct,
            "median_vs_plain": self.vs_baseline,
            "median_vs_kit_default": self.vs_reference,
        }


def summarize(
    scenarios: Sequence[Scenario],
    runs: Sequence[RunRecord],
    baseline: str = BASELINE,
    reference: str | None = REFERENCE,
) -> list[Summary]:
    """Median and spread per scenario; ratios to the ``baseline`` and ``reference`` keys."""
    rates = {s.key: [r.measurement.rate for r in runs if r.scenario == s.key] for s in scenarios}
    medians = {key: statistics.median(values) for key, values in rates.items() if values}
    summaries = []
    for scenario in scenarios:
        values = rates[scenario.key]
        if not values:
            continue
        median = medians[scenario.key]
        summaries.append(
            Summary(
                scenario=scenario,
                rates=values,
                median=median,
                low=min(values),
                high=max(values),
                vs_baseline=_ratio(median, medians.get(baseline)),
                vs_reference=_ratio(median, medians.get(reference)) if reference else None,
            )
        )
    return summaries


def _ratio(value: float, reference: float | None) -> float | None:
    return value / reference if reference else None


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def table(summaries: Sequence[Summary]) -> str:
    lines = [
        "| Scenario | Change from kit default | Median tasks/s | Min-max tasks/s | Spread "
        "| vs plain Celery | vs kit default |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.scenario.label} | {s.scenario.change} | {s.median:,.0f} "
            f"| {s.low:,.0f}-{s.high:,.0f} | {s.spread_pct:.1f}% "
            f"| {_times(s.vs_baseline)} | {_times(s.vs_reference)} |"
        )
    return "\n".join(lines)


def raw_table(summaries: Sequence[Summary], runs: Sequence[RunRecord]) -> str:
    repeats = max((r.repeat for r in runs), default=-1) + 1
    header = " | ".join(f"run {i + 1}" for i in range(repeats))
    lines = [
        f"| Scenario | {header} | start-up s (median) | results stored (last run) |",
        "|---|" + "---:|" * (repeats + 2),
    ]
    for s in summaries:
        own = sorted((r for r in runs if r.scenario == s.scenario.key), key=lambda r: r.repeat)
        cells = " | ".join(f"{r.measurement.rate:,.1f}" for r in own)
        startup = statistics.median(r.measurement.startup for r in own)
        lines.append(f"| {s.scenario.key} | {cells} | {startup:.1f} | {own[-1].results_stored} |")
    return "\n".join(lines)


def log_errors(runs: Sequence[RunRecord]) -> str:
    """Errors the workers logged that did not invalidate a run, still worth a reader's eye."""
    by_message: dict[str, set[str]] = {}
    for run in runs:
        for message in run.log_errors:
            by_message.setdefault(message, set()).add(run.scenario)
    if not by_message:
        return ""
    items = "\n".join(
        f"- {', '.join(sorted(scenarios))}: `{message}`"
        for message, scenarios in by_message.items()
    )
    return f"## Worker log errors (not about the benchmark task)\n\n{items}\n\n"


def markdown(
    summaries: Sequence[Summary],
    runs: Sequence[RunRecord],
    facts: Mapping[str, object],
    params: Mapping[str, object],
    *,
    title: str = "Worker throughput on no-op tasks",
    main_table: str | None = None,
    extra: str = "",
) -> str:
    """The whole report; ``main_table`` replaces the throughput table, ``extra`` (Markdown
    sections) goes after the raw rates."""
    fact_lines = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    param_lines = "\n".join(f"- {name}: {value}" for name, value in params.items())
    return (
        f"# {title}\n\n"
        f"{table(summaries) if main_table is None else main_table}\n\n"
        "## Raw rates (tasks/s, in run order within each scenario)\n\n"
        f"{raw_table(summaries, runs)}\n\n"
        f"{extra}"
        f"{log_errors(runs)}"
        f"## Parameters\n\n{param_lines}\n\n"
        f"## Machine\n\n{fact_lines}\n"
    )


def write_files(
    output_dir: Path, name: str, text: str, payload: Mapping[str, object]
) -> tuple[Path, Path]:
    """``<name>.md`` and ``<name>.json`` in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    md_path = output_dir / f"{name}.md"
    json_path = output_dir / f"{name}.json"
    md_path.write_text(text)
    json_path.write_text(json.dumps(dict(payload), indent=2) + "\n")
    return md_path, json_path


def write_results(
    output_dir: Path,
    summaries: Sequence[Summary],
    runs: Sequence[RunRecord],
    facts: Mapping[str, object],
    params: Mapping[str, object],
    text: str,
) -> tuple[Path, Path]:
    payload = {
        "machine": dict(facts),
        "parameters": dict(params),
        "summary": [s.as_dict() for s in summaries],
        "runs": [r.as_dict() for r in runs],
    }
    return write_files(output_dir, "throughput", text, payload)
