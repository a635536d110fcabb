"""``python -m benchmarks throughput``: what each kit default costs, one at a time.

Ratios are to stock Celery (what the kit costs) and to the kit's default (what one reverted
setting buys); the raw rates and the worker log errors follow, so a surprising median can be
traced to its runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.core.measure import POLL_INTERVAL
from benchmarks.core.report import document, table, times, write_report
from benchmarks.core.rounds import order_note
from benchmarks.core.session import session
from benchmarks.core.stats import RateSummary, ratio, summarize
from benchmarks.throughput.scenario import (
    Scenario,
    log_errors_section,
    raw_rates_section,
    run_throughput,
    select,
)

__all__ = ["run"]

BASELINE = "plain"  # stock Celery: what the kit costs
REFERENCE = "kit"  # the kit's default: what reverting one setting buys


def run(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks
    scenarios = select(args.scenario)
    with session() as bench:
        runs = run_throughput(
            bench.redis, scenarios, tasks=tasks, repeat=args.repeat, workdir=bench.workdir
        )
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "repeat": args.repeat,
        "order": order_note(args.repeat, (s.key for s in scenarios)),
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "worker": "default CLI flags and concurrency, Celery's default log level",
        "measure": "acknowledged messages (queue lists + unacked hash), first to last",
    }
    rates = summarize((r.scenario, r.measurement.rate) for r in runs)
    text = document(
        "Worker throughput on no-op tasks",
        _table(scenarios, rates),
        raw_rates_section(scenarios, runs),
        log_errors_section(runs),
        params=params,
        facts=bench.facts,
    )
    payload = {
        "machine": bench.facts,
        "parameters": params,
        "summary": _summary(scenarios, rates),
        "runs": [r.as_dict() for r in runs],
    }
    write_report(args.output_dir, "throughput", text, payload)
    return 0


def _ratios(s: RateSummary, rates: dict[str, RateSummary]) -> tuple[float | None, float | None]:
    return ratio(s.median, rates.get(BASELINE)), ratio(s.median, rates.get(REFERENCE))


def _table(scenarios: Sequence[Scenario], rates: dict[str, RateSummary]) -> str:
    rows = []
    for scenario in scenarios:
        if (s := rates.get(scenario.key)) is not None:
            vs_plain, vs_kit = _ratios(s, rates)
            rows.append(
                [
                    scenario.label,
                    scenario.change,
                    f"{s.median:,.0f}",
                    f"{s.low:,.0f}-{s.high:,.0f}",
                    f"{s.spread_pct:.1f}%",
                    times(vs_plain),
                    times(vs_kit),
                ]
            )
    header = ["Scenario", "Change from kit default", "Median tasks/s", "Min-max tasks/s"]
    header += ["Spread", "vs plain Celery", "vs kit default"]
    return table(header, rows, "llrrrrr")


def _summary(
    scenarios: Sequence[Scenario], rates: dict[str, RateSummary]
) -> list[dict[str, object]]:
    found = []
    for scenario in scenarios:
        if (s := rates.get(scenario.key)) is not None:
            vs_plain, vs_kit = _ratios(s, rates)
            found.append(
                {
                    "scenario": scenario.key,
                    "label": scenario.label,
                    "change": scenario.change,
                    **s.as_dict(),
                    "median_vs_plain": vs_plain,
                    "median_vs_kit_default": vs_kit,
                }
            )
    return found
