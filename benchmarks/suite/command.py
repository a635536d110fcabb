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
import sys
import time
from typing import Any

from benchmarks.core.jsonable import json_safe
from benchmarks.core.report import document, table, write_report
from benchmarks.enqueue.scenario import summaries as enqueue_summaries
from benchmarks.enqueue.scenario import summary_dicts
from benchmarks.layouts.processing import commands_by_layout, rates_by_layout
from benchmarks.suite.chart import CHART_NAME, write_chart
from benchmarks.suite.rows import concern_costs, table_rows
from benchmarks.suite.run import FULL, QUICK, SECTIONS, SuiteResults, run_suite
from benchmarks.suite.targets import commands_per_task, targets
from benchmarks.telemetry.scenario import cpu_section, span_section

__all__ = ["payload", "run", "suite_markdown"]

TOP_COMMANDS = 8  # commands named per layout in the by-command list
MIN_SHOWN = 0.005  # commands per task below this are not listed (they round to 0.00)


def run(args: argparse.Namespace, command: str) -> int:
    config = QUICK if args.quick else FULL
    if args.repeat:
        config = dataclasses.replace(config, repeat=args.repeat)
    began = time.monotonic()
    results = run_suite(config, args.only or SECTIONS, args.layout)
    wall = time.monotonic() - began
    text = suite_markdown(results, command) + f"Total wall time: {wall:.0f} s.\n"
    data = {**payload(results, command), "wall_seconds": wall}
    write_report(args.output_dir, "all", text, data)
    if data["processing"]:
        print(f"wrote {write_chart(data, args.output_dir / CHART_NAME)}", file=sys.stderr)
    return 0


def machine_line(facts: dict[str, object]) -> str:
    return (
        f"{facts.get('usable_cpus')} CPUs ({facts.get('cpu_model')}), {facts.get('python')}, "
        f"Celery {facts.get('celery')}, kombu {facts.get('kombu')}, redis-py "
        f"{facts.get('redis_py')}, Redis {facts.get('redis_server')}, Dramatiq "
        f"{facts.get('dramatiq')}, RQ {facts.get('rq')}; load average at start "
        f"{facts.get('load_average_at_start')}; {facts.get('date_utc')}"
    )


def _commands_section(results: SuiteResults) -> str:
    """Each layout's Redis commands per task by command (its last repetition): where its
    Redis work goes."""
    lines = []
    for key, counts in commands_by_layout(results.processing).items():
        top = list(counts[-1].by_command(at_least=MIN_SHOWN).items())
        text = ", ".join(f"{name} {n:.2f}" for name, n in top[:TOP_COMMANDS])
        rest = sum(n for _, n in top[TOP_COMMANDS:])
        lines.append(
            f"- {key} ({counts[-1].per_task:.1f}): {text}" + (f", other {rest:.2f}" if rest else "")
        )
    if not lines:
        return ""
    return (
        "## Redis commands per task, by command\n\nINFO commandstats over the no-op phase "
        "(pre-loaded, so all worker side; the benchmark's probe left out), last repetition; "
        "a Lua script counts as EVALSHA plus each command it runs.\n\n" + "\n".join(lines)
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
    blocks = ["## Layouts\n\n" + "\n".join(layouts), _commands_section(results)]
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
    blocks.append(cpu_section(results.telemetry))
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
        table(header, table_rows(results, found), "llrrll"),
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
            "redis_commands_per_task": commands_per_task(results),
            "costs_us_per_task": [
                {"scenario": key, "concern": concern, "median": us, "low": low, "high": high}
                for key, concern, (us, low, high) in concern_costs(results)
            ],
            "latency": [r.as_dict() for r in results.latency],
            "telemetry": [r.as_dict() for r in results.telemetry],
            "memory": results.memory.as_dict() if results.memory else None,
            "images": results.images,
            "runs": {
                "enqueue": [r.as_dict() for r in results.enqueue],
                "processing": [r.as_dict() for r in results.processing],
                "costs": [r.as_dict() for r in results.costs],
            },
        }
    )
    return cleaned
