"""``python -m benchmarks enqueue`` and ``python -m benchmarks bulk``: producer rates.

``enqueue`` reports every :data:`~benchmarks.enqueue.scenario.VARIANTS` rate and, as their own
lines with the target, the ratios that matter (``enqueue_unique`` over ``apply_async``, target
>= 0.8, and ``enqueue_many`` over the loop, target >= 20, with telemetry off and on; the kit's
``apply_async`` over stock Celery's with a result backend, target >= 0.9), plus what
telemetry costs each and how the reference libraries compare. ``bulk`` reports
``enqueue_many`` (with and without ``unique=True``) against the ``apply_async`` loop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from benchmarks.core.jsonable import record
from benchmarks.core.machine import available
from benchmarks.core.report import document, rate_cells, table, write_report
from benchmarks.core.rounds import order_note
from benchmarks.core.session import session
from benchmarks.core.stats import RateSummary
from benchmarks.enqueue.producer import WARMUP
from benchmarks.enqueue.scenario import (
    BRIEF_FIELDS,
    BULK_VARIANTS,
    VARIANTS,
    EnqueueRun,
    Variant,
    run_enqueue,
    summaries,
    summary_dicts,
)

__all__ = ["BULK_TARGET", "TARGET", "bulk", "enqueue", "ratios"]

TARGET = 0.8  # enqueue_unique / apply_async
BULK_TARGET = 20.0  # enqueue_many / an apply_async loop
PLAIN_TARGET = 0.9  # the kit's apply_async loop / stock Celery's (with a result backend)
#: (numerator, denominator, what it says, target or None)
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    (
        "apply_async",
        "plain-apply_async-results",
        "kit apply_async / plain Celery's (Redis result backend)",
        PLAIN_TARGET,
    ),
    ("apply_async", "plain-apply_async", "kit apply_async / plain Celery's (no backend)", None),
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


def enqueue(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks
    variants, skipped = available(VARIANTS)
    for variant in skipped:
        print(f"skipping {variant.key}: {variant.requires} is not installed", file=sys.stderr)
    with session(receiver=True) as bench:
        runs = run_enqueue(bench, variants, tasks=tasks, repeat=args.repeat)
    params: dict[str, object] = {
        "command": command,
        "enqueues_per_run": ", ".join(f"{v.key} {tasks * v.scale}" for v in variants),
        "warm_up": f"{WARMUP} untimed enqueues per run, after setup_telemetry('producer')",
        "repeat": args.repeat,
        "order": order_note(args.repeat, (v.key for v in variants)),
        "producer": "python -m benchmarks.core.producer benchmarks.enqueue.producer:<variant>, "
        "a fresh process per run, one thread; Celery through its producer pool (one reused "
        "connection), the kit's result backend on (each apply_async subscribes to its result "
        "channel)",
        "arguments": "distinct per task (bench.item(n)), so no enqueue_unique is a duplicate",
        "enqueue_many": "one call for the whole run (the kit batches and pipelines it)",
        "telemetry on": "setup_telemetry('producer'), OTLP/gRPC to an in-process receiver",
    }
    found = summaries(variants, runs)
    rows = [
        [v.label, "on (OTLP to local receiver)" if v.telemetry else "off", *rate_cells(s)]
        for v, s in found
    ]
    header = ["Variant", "Telemetry", "Median enqueues/s", "Min-max enqueues/s", "Spread"]
    notes = [_ratio_line(r) for r in ratios(found)]
    notes += [f"- {v.label}: skipped, `{v.requires}` is not installed" for v in skipped]
    text = document(
        "Producer enqueue rate into Redis (no worker running)",
        table(header, rows, "llrrr"),
        "\n".join(notes),
        "## Raw rates (enqueues/s, in run order within each variant)\n\n" + _raw(found, runs),
        params=params,
        facts=bench.facts,
    )
    payload = {
        "machine": bench.facts,
        "parameters": params,
        "summary": summary_dicts(found),
        "ratios": ratios(found),
        "skipped": [v.key for v in skipped],
        "runs": [r.as_dict() for r in runs],
    }
    write_report(args.output_dir, "enqueue", text, payload)
    return 0


def ratios(found: Sequence[tuple[Variant, RateSummary]]) -> list[dict[str, object]]:
    """The :data:`RATIOS` of medians whose variants ran; ``overlap``: the two min-max ranges
    overlap, so the ratio's distance from 1 is within the run-to-run noise."""
    by_key = {v.key: s for v, s in found}
    result: list[dict[str, object]] = []
    for top, bottom, label, target in RATIOS:
        if top in by_key and bottom in by_key:
            a, b = by_key[top], by_key[bottom]
            value = a.median / b.median
            met = None if target is None else value >= target
            result.append(
                {
                    "ratio": label,
                    "value": value,
                    "target": target,
                    "met": met,
                    "overlap": a.overlaps(b),
                }
            )
    return result


def _ratio_line(ratio: Mapping[str, object]) -> str:
    line = f"- {ratio['ratio']}: {float(str(ratio['value'])):.2f}"
    if ratio["target"] is not None:
        verdict = "met" if ratio["met"] else "NOT met"
        line += f" (target >= {float(str(ratio['target'])):.2f}: {verdict})"
    if ratio["overlap"]:
        line += "; min-max ranges overlap: within noise"
    return line


def _raw(found: Sequence[tuple[Variant, RateSummary]], runs: Sequence[EnqueueRun]) -> str:
    repeats = max((r.repeat for r in runs), default=-1) + 1
    rows = []
    for variant, _ in found:
        own = sorted((r for r in runs if r.variant == variant.key), key=lambda r: r.repeat)
        last = own[-1]
        # Warm-up enqueues make spans too: divide by every enqueue of the run.
        enqueues = last.count + WARMUP
        spans = ", ".join(f"{k} {v / enqueues:.2f}" for k, v in sorted(last.spans.items()))
        rates = [f"{r.rate:,.1f}" for r in own]
        rows.append([variant.key, *rates, spans or "-", last.redis_keys])
    header = ["Variant", *(f"run {i + 1}" for i in range(repeats))]
    header += ["spans per enqueue (last run)", "Redis keys (last run)"]
    return table(header, rows, "l" + "r" * (repeats + 2))


def bulk(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks
    with session() as bench:
        runs = run_enqueue(bench, BULK_VARIANTS, tasks=tasks, repeat=args.repeat, unit="tasks/s")
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "warm_up": f"{WARMUP} untimed tasks per run, published the same way",
        "repeat": args.repeat,
        "order": order_note(args.repeat, (v.key for v in BULK_VARIANTS)),
        "producer": "python -m benchmarks.core.producer benchmarks.enqueue.producer:<variant>, "
        "a fresh process per run, telemetry off, the kit's result backend on",
        "arguments": "distinct per task (bench.item(n)), so no unique task is a duplicate",
    }
    rates = dict((v.key, s) for v, s in summaries(BULK_VARIANTS, runs))
    loop = rates["loop"].median
    ratio = rates["enqueue_many"].median / loop
    unique = rates["enqueue_many_unique"].median / loop
    labels = {v.key: v.label for v in BULK_VARIANTS}
    rows = [
        [labels[k], f"{s.median:,.0f}", f"{s.spread_pct:.0f}%", f"{s.median / loop:.2f}x"]
        for k, s in rates.items()
    ]
    raw = [[labels[k], ", ".join(f"{rate:,.0f}" for rate in s.rates)] for k, s in rates.items()]
    verdict = "met" if ratio >= BULK_TARGET else "missed"
    text = document(
        "Bulk enqueue: enqueue_many vs an apply_async loop",
        table(["variant", "median tasks/s", "spread", "vs loop"], rows, "llll"),
        f"enqueue_many / apply_async loop: {ratio:.2f}x (target >= {BULK_TARGET:.0f}x: "
        f"{verdict})\nenqueue_many unique=True / apply_async loop: {unique:.2f}x",
        "## Raw rates (tasks/s, in run order)\n\n" + table(["variant", "runs"], raw, "ll"),
        params=params,
        facts=bench.facts,
    )
    payload = {
        "machine": bench.facts,
        "parameters": params,
        "summary": {
            k: {name: v for name, v in s.as_dict().items() if name != "rates"}
            for k, s in rates.items()
        },
        "target": BULK_TARGET,
        "ratio": ratio,
        "runs": [record(r, *BRIEF_FIELDS) for r in runs],
    }
    write_report(args.output_dir, "bulk", text, payload)
    return 0
