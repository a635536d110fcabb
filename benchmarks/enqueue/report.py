"""The enqueue benchmark's report: rates per variant and the ratios the issue asks about.

As in the worker benchmarks: the median, with the min-max spread beside it, so noise can be
told from a difference. The ratios that matter (``enqueue_unique`` over ``apply_async``, target
>= 0.8, with telemetry off and on) are printed as their own lines with the target, plus what
telemetry costs each of them and, when measured, how the reference libraries compare.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.enqueue.producer import WARMUP
from benchmarks.enqueue.scenario import EnqueueRun, Variant
from benchmarks.throughput.report import write_files

__all__ = ["EnqueueSummary", "enqueue_markdown", "summarize_enqueue", "write_enqueue"]

NAME = "enqueue"
TARGET = 0.8  # the target for enqueue_unique / apply_async
BULK_TARGET = 10.0  # the target for enqueue_many / an apply_async loop
#: (numerator, denominator, what it says, target or None)
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("enqueue_unique", "apply_async", "enqueue_unique / apply_async, telemetry off", TARGET),
    (
        "enqueue_unique-otel",
        "apply_async-otel",
        "enqueue_unique / apply_async, telemetry on",
        TARGET,
    ),
    ("enqueue_many", "apply_async", "enqueue_many / apply_async loop, telemetry off", BULK_TARGET),
    (
        "enqueue_many-otel",
        "apply_async-otel",
        "enqueue_many / apply_async loop, telemetry on",
        BULK_TARGET,
    ),
    ("apply_async-otel", "apply_async", "apply_async, telemetry on / off", None),
    ("enqueue_unique-otel", "enqueue_unique", "enqueue_unique, telemetry on / off", None),
    ("dramatiq", "apply_async", "Dramatiq send / apply_async", None),
    ("rq", "apply_async", "RQ enqueue / apply_async", None),
)


@dataclass(frozen=True)
class EnqueueSummary:
    variant: Variant
    rates: list[float]
    median: float
    low: float
    high: float

    @property
    def spread_pct(self) -> float:
        return 100.0 * (self.high - self.low) / self.median

    def as_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant.key,
            "label": self.variant.label,
            "telemetry": self.variant.telemetry,
            "rates": self.rates,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread_pct": self.spread_pct,
        }


def summarize_enqueue(
    variants: Sequence[Variant], runs: Sequence[EnqueueRun]
) -> list[EnqueueSummary]:
    summaries = []
    for variant in variants:
        rates = [r.rate for r in runs if r.variant == variant.key]
        if rates:
            summaries.append(
                EnqueueSummary(variant, rates, statistics.median(rates), min(rates), max(rates))
            )
    return summaries


def ratios(summaries: Sequence[EnqueueSummary]) -> list[dict[str, object]]:
    """The :data:`RATIOS` of medians whose variants ran; ``overlap``: the two min-max ranges
    overlap, so the ratio's distance from 1 is within the run-to-run noise."""
    by_key = {s.variant.key: s for s in summaries}
    found: list[dict[str, object]] = []
    for top, bottom, label, target in RATIOS:
        if top in by_key and bottom in by_key:
            a, b = by_key[top], by_key[bottom]
            value = a.median / b.median
            met = None if target is None else value >= target
            overlap = len(a.rates) > 1 and a.low <= b.high and b.low <= a.high
            found.append(
                {"ratio": label, "value": value, "target": target, "met": met, "overlap": overlap}
            )
    return found


def _ratio_line(ratio: Mapping[str, object]) -> str:
    line = f"- {ratio['ratio']}: {float(str(ratio['value'])):.2f}"
    if ratio["target"] is not None:
        verdict = "met" if ratio["met"] else "NOT met"
        line += f" (target >= {float(str(ratio['target'])):.2f}: {verdict})"
    if ratio["overlap"]:
        line += "; min-max ranges overlap: within noise"
    return line


def table(summaries: Sequence[EnqueueSummary]) -> str:
    lines = [
        "| Variant | Telemetry | Median enqueues/s | Min-max enqueues/s | Spread |",
        "|---|---|---:|---:|---:|",
    ]
    for s in summaries:
        telemetry = "on (OTLP to local receiver)" if s.variant.telemetry else "off"
        lines.append(
            f"| {s.variant.label} | {telemetry} | {s.median:,.0f} "
            f"| {s.low:,.0f}-{s.high:,.0f} | {s.spread_pct:.1f}% |"
        )
    return "\n".join(lines)


def raw_table(summaries: Sequence[EnqueueSummary], runs: Sequence[EnqueueRun]) -> str:
    repeats = max((r.repeat for r in runs), default=-1) + 1
    header = " | ".join(f"run {i + 1}" for i in range(repeats))
    lines = [
        f"| Variant | {header} | spans per enqueue (last run) | Redis keys (last run) |",
        "|---|" + "---:|" * (repeats + 2),
    ]
    for s in summaries:
        own = sorted((r for r in runs if r.variant == s.variant.key), key=lambda r: r.repeat)
        cells = " | ".join(f"{r.rate:,.1f}" for r in own)
        last = own[-1]
        # Warm-up enqueues make spans too: divide by every enqueue of the run.
        enqueues = last.count + WARMUP
        spans = ", ".join(f"{k} {v / enqueues:.2f}" for k, v in sorted(last.spans.items()))
        lines.append(f"| {s.variant.key} | {cells} | {spans or '-'} | {last.redis_keys} |")
    return "\n".join(lines)


def enqueue_markdown(
    summaries: Sequence[EnqueueSummary],
    runs: Sequence[EnqueueRun],
    skipped: Sequence[Variant],
    facts: Mapping[str, object],
    params: Mapping[str, object],
) -> str:
    ratio_text = "\n".join(_ratio_line(r) for r in ratios(summaries))
    skipped_text = "".join(
        f"- {v.label}: skipped, `{v.requires}` is not installed\n" for v in skipped
    )
    fact_lines = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    param_lines = "\n".join(f"- {name}: {value}" for name, value in params.items())
    return (
        "# Producer enqueue rate into Redis (no worker running)\n\n"
        f"{table(summaries)}\n\n{ratio_text}\n"
        f"{skipped_text}\n"
        "## Raw rates (enqueues/s, in run order within each variant)\n\n"
        f"{raw_table(summaries, runs)}\n\n"
        f"## Parameters\n\n{param_lines}\n\n"
        f"## Machine\n\n{fact_lines}\n"
    )


def write_enqueue(
    output_dir: Path,
    summaries: Sequence[EnqueueSummary],
    runs: Sequence[EnqueueRun],
    skipped: Sequence[Variant],
    facts: Mapping[str, object],
    params: Mapping[str, object],
    text: str,
) -> tuple[Path, Path]:
    payload = {
        "machine": dict(facts),
        "parameters": dict(params),
        "summary": [s.as_dict() for s in summaries],
        "ratios": ratios(summaries),
        "skipped": [v.key for v in skipped],
        "runs": [r.as_dict() for r in runs],
    }
    return write_files(output_dir, NAME, text, payload)
