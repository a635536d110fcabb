"""``python -m benchmarks bulk``: ``enqueue_many`` against a loop of ``apply_async``.

Same run, same private Redis, interleaved: every round runs each variant once, in a fresh
producer process, into an emptied Redis, and checks every task landed. Reported per variant:
median rate, spread ((max - min) / median) and every raw run; then the ratio of the medians,
against the issue's target of 10x the loop's rate. Telemetry is off in the producers (the
enqueue benchmark measures its cost); the worker is not involved (nothing consumes).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core.machine import machine_facts
from benchmarks.core.measure import BenchmarkError, QueueProbe
from benchmarks.core.processes import PrivateRedis, child_env, private_redis, run_producer
from benchmarks.enqueue.bulk_producer import VARIANTS, WARMUP
from benchmarks.throughput.report import write_files

__all__ = ["TARGET", "bulk_command"]

TARGET = 10.0  # enqueue_many's rate over the loop's, from the issue
LABELS = {
    "loop": "apply_async loop",
    "enqueue_many": "enqueue_many",
    "enqueue_many_unique": "enqueue_many, unique=True",
}


@dataclass(frozen=True)
class BulkRun:
    variant: str
    repeat: int
    order: int
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def _run_once(redis: PrivateRedis, variant: str, tasks: int, repeat: int, order: int) -> BulkRun:
    redis.flushall()
    env = child_env(
        {
            "REDIS_URL": redis.url,
            "KIT_IMPORTS": "benchmarks.throughput.kit_tasks",
            "OTEL_SDK_DISABLED": "true",
        }
    )
    result = run_producer(variant, tasks, env, module="benchmarks.enqueue.bulk_producer")
    published = QueueProbe.discover(redis.client).remaining()
    if published != tasks + WARMUP:
        raise BenchmarkError(f"{variant}: {published} messages in Redis, expected {tasks + WARMUP}")
    return BulkRun(variant, repeat, order, tasks, float(str(result["seconds"])))


def _summary(runs: Sequence[BulkRun]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for variant in VARIANTS:
        rates = [r.rate for r in runs if r.variant == variant]
        median = statistics.median(rates)
        out[variant] = {
            "median": median,
            "min": min(rates),
            "max": max(rates),
            "spread_pct": 100 * (max(rates) - min(rates)) / median if median else 0,
        }
    return out


def _markdown(
    summary: Mapping[str, Mapping[str, float]],
    runs: Sequence[BulkRun],
    facts: Mapping[str, object],
    params: Mapping[str, object],
) -> str:
    loop = summary["loop"]["median"]
    rows = "\n".join(
        f"| {LABELS[v]} | {s['median']:,.0f} | {s['spread_pct']:.0f}% | {s['median'] / loop:.2f}x |"
        for v, s in summary.items()
    )
    raw = "\n".join(
        f"| {LABELS[v]} | " + ", ".join(f"{r.rate:,.0f}" for r in runs if r.variant == v) + " |"
        for v in summary
    )
    ratio = summary["enqueue_many"]["median"] / loop
    unique = summary["enqueue_many_unique"]["median"] / loop
    verdict = "met" if ratio >= TARGET else "missed"
    return (
        "# Bulk enqueue: enqueue_many vs an apply_async loop\n\n"
        "| variant | median tasks/s | spread | vs loop |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        f"enqueue_many / apply_async loop: {ratio:.2f}x (target >= {TARGET:.0f}x: {verdict})\n"
        f"enqueue_many unique=True / apply_async loop: {unique:.2f}x\n\n"
        "## Raw rates (tasks/s, in run order)\n\n| variant | runs |\n|---|---|\n"
        f"{raw}\n\n## Parameters\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in params.items())
        + "\n\n## Machine\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in facts.items())
        + "\n"
    )


def bulk_command(tasks: int, repeat: int, output_dir: Path, command: str) -> int:
    runs: list[BulkRun] = []
    with private_redis() as redis:
        facts = machine_facts(redis.version())
        for rep in range(repeat):
            for variant in VARIANTS:
                run = _run_once(redis, variant, tasks, rep, len(runs))
                runs.append(run)
                print(
                    f"[{len(runs)}/{repeat * len(VARIANTS)}] {variant}: {run.rate:,.0f} "
                    f"tasks/s ({tasks} in {run.seconds:.2f} s)",
                    file=sys.stderr,
                )
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "warm_up": f"{WARMUP} untimed tasks per run, published the same way",
        "repeat": repeat,
        "order": f"{repeat} interleaved round(s) of: " + ", ".join(VARIANTS),
        "producer": "python -m benchmarks.enqueue.bulk_producer, a fresh process per run, "
        "telemetry off, the kit's result backend on",
        "arguments": "distinct per task (bench.item(n)), so no unique task is a duplicate",
    }
    summary = _summary(runs)
    text = _markdown(summary, runs, facts, params)
    print(text)
    payload = {
        "machine": dict(facts),
        "parameters": params,
        "summary": summary,
        "target": TARGET,
        "ratio": summary["enqueue_many"]["median"] / summary["loop"]["median"],
        "runs": [{**vars(r), "rate": r.rate} for r in runs],
    }
    md_path, json_path = write_files(output_dir, "bulk", text, payload)
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0
