"""``python -m benchmarks hooks``: microseconds per task of each middleware hook, telemetry off
and exporting over OTLP, in the order a task meets them (the table in project/lifecycle)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.core.processes import ROOT
from benchmarks.core.report import document, table, write_report
from benchmarks.core.session import session
from benchmarks.hooks.scenario import MODES

__all__ = ["run"]


def _measure(mode: str, tasks: int, redis_url: str, endpoint: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.hooks.scenario", mode, str(tasks), redis_url]
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


def run(args: argparse.Namespace, command: str) -> int:
    runs = []
    with session(receiver=True) as bench:
        bench.redis.client.flushall()
        for mode in MODES:
            endpoint = bench.sink.endpoint if mode == "otlp" else None
            runs.append(_measure(mode, args.tasks, bench.redis.url, endpoint))
            bench.redis.client.flushall()
    rates = ", ".join(f"{r['mode']} {r['worker_tasks_per_second']:.0f}/s" for r in runs)
    text = document(
        "Middleware cost per task",
        "Microseconds per task, in-thread solo worker, no-op tasks; `Empty` is a hook that "
        f"does nothing (the pipeline and its timer). Worker rate with timing on: {rates}.",
        table(["side", "hook", "middleware", *(f"us ({m})" for m in MODES)], _rows(runs), "lllrr"),
        params={"tasks": args.tasks, "command": command},
        facts=bench.facts,
    )
    write_report(args.output_dir, "hooks", text, {"runs": runs, "machine": bench.facts})
    return 0
