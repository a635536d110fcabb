"""``python -m benchmarks hooks``: microseconds per task of each middleware hook, telemetry off
and exporting over OTLP, in the order a task meets them (the table in project/lifecycle), then
the CPU of one whole attempt in a tight loop of Celery's tracer (:mod:`benchmarks.hooks.attempts`),
telemetry off and on, medians of :data:`ATTEMPT_REPEAT` interleaved runs: what telemetry costs
per attempt, steadier than the worker benchmarks' rates."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.core.processes import ROOT
from benchmarks.core.report import document, table, write_report
from benchmarks.core.session import session
from benchmarks.hooks.scenario import MODES

__all__ = ["ATTEMPT_REPEAT", "run"]

ATTEMPT_REPEAT = 3


def _measure(
    mode: str, tasks: int, redis_url: str, endpoint: str | None, module: str = "scenario"
) -> dict[str, Any]:
    command = [sys.executable, "-m", f"benchmarks.hooks.{module}", mode, str(tasks), redis_url]
    done = subprocess.run(
        [*command, *([endpoint] if endpoint else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    keys: list[tuple[str, str, str]] = []
    cost: dict[tuple[str, str, str, str], float] = {}
    for run in runs:
        for row in run["hooks"]:
            key = (row["side"], row["hook"], row["middleware"])
            if key not in keys:
                keys.append(key)
            cost[(*key, run["mode"])] = row["us"]
    return [
        [
            side,
            hook,
            middleware,
            *(_us(cost.get((side, hook, middleware, m))) for m in MODES),
        ]
        for side, hook, middleware in keys
    ]


def _us(value: float | None) -> str:
    """A cost, or a dash where the hook did not run in that mode (the attempt's span
    receivers exist only with telemetry on)."""
    return "-" if value is None else f"{value:.1f}"


def _attempt_rows(attempts: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Per mode: the medians of the task thread's and the whole process's CPU per attempt,
    their ranges, and the difference to telemetry off."""
    found = {
        mode: [run for run in attempts if run["mode"] == mode]
        for mode in MODES
        if any(run["mode"] == mode for run in attempts)
    }
    medians = {
        mode: {
            part: statistics.median(run[part] for run in runs)
            for part in ("thread_us", "process_us")
        }
        for mode, runs in found.items()
    }
    base = medians.get(MODES[0])
    rows = []
    for mode, runs in found.items():
        cells = [mode]
        for part in ("thread_us", "process_us"):
            low, high = min(r[part] for r in runs), max(r[part] for r in runs)
            extra = "" if base is None else f" ({medians[mode][part] - base[part]:+.1f})"
            cells.append(f"{medians[mode][part]:.1f}{extra}, {low:.1f}-{high:.1f}")
        rows.append(cells)
    return rows


def run(args: argparse.Namespace, command: str) -> int:
    runs = []
    attempts = []
    with session(receiver=True) as bench:
        bench.redis.client.flushall()
        for mode in MODES:
            endpoint = bench.sink.endpoint if mode == "otlp" else None
            runs.append(_measure(mode, args.tasks, bench.redis.url, endpoint))
            bench.redis.client.flushall()
        for _ in range(ATTEMPT_REPEAT):
            for mode in MODES:
                endpoint = bench.sink.endpoint if mode == "otlp" else None
                url = bench.redis.url
                attempts.append(_measure(mode, args.attempts, url, endpoint, module="attempts"))
    rates = ", ".join(f"{r['mode']} {r['worker_tasks_per_second']:.0f}/s" for r in runs)
    text = document(
        "Middleware cost per task",
        "Microseconds per task, in-thread solo worker, no-op tasks; `Empty` is a hook that "
        f"does nothing (the pipeline and its timer). Worker rate with timing on: {rates}.",
        table(["side", "hook", "middleware", *(f"us ({m})" for m in MODES)], _rows(runs), "lllrr"),
        "## A whole attempt, CPU per attempt\n\n"
        f"A tight loop of Celery's tracer over {args.attempts:,} no-op attempts, every hook and "
        "the span receivers included, no result stored (`benchmarks/hooks/attempts.py`); medians "
        f"of {ATTEMPT_REPEAT} interleaved runs, the difference to telemetry off in brackets, "
        "then the range. The whole process includes the span export thread and gRPC's.",
        table(["telemetry", "task thread us", "whole process us"], _attempt_rows(attempts), "lrr"),
        params={"tasks": args.tasks, "attempts": args.attempts, "command": command},
        facts=bench.facts,
    )
    write_report(
        args.output_dir,
        "hooks",
        text,
        {"runs": runs, "attempts": attempts, "machine": bench.facts},
    )
    return 0
