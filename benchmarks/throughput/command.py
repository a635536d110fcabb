"""``python -m benchmarks throughput``: what each kit default costs, one at a time.

Ratios are to stock Celery (what the kit costs) and to the kit's default (what one reverted
setting buys); the raw rates and the worker log errors follow, so a surprising median can be
traced to its runs.
"""

from __future__ import annotations

import argparse

from benchmarks.core.report import document, rate_cells, table, times, write_report
from benchmarks.core.session import session
from benchmarks.core.stats import ratio
from benchmarks.throughput.scenario import (
    log_errors_section,
    raw_rates_section,
    run_throughput,
    select,
    summaries,
    summary_dict,
    worker_params,
)

__all__ = ["run"]

BASELINE = "plain"  # stock Celery: what the kit costs
REFERENCE = "kit"  # the kit's default: what reverting one setting buys


def run(args: argparse.Namespace, command: str) -> int:
    scenarios = select(args.scenario)
    with session() as bench:
        runs = run_throughput(bench, scenarios, tasks=args.tasks, repeat=args.repeat)
    worker = "default CLI flags and concurrency, Celery's default log level"
    params = worker_params(command, args, scenarios, worker)
    found = summaries(scenarios, runs)
    rates = {scenario.key: s for scenario, s in found}
    rows, summary = [], []
    for scenario, s in found:
        vs_plain, vs_kit = (
            ratio(s.median, rates.get(BASELINE)),
            ratio(s.median, rates.get(REFERENCE)),
        )
        rows.append(
            [scenario.label, scenario.change, *rate_cells(s), times(vs_plain), times(vs_kit)]
        )
        summary.append(
            summary_dict(scenario, s, median_vs_plain=vs_plain, median_vs_kit_default=vs_kit)
        )
    header = ["Scenario", "Change from kit default", "Median tasks/s", "Min-max tasks/s"]
    header += ["Spread", "vs plain Celery", "vs kit default"]
    text = document(
        "Worker throughput on no-op tasks",
        table(header, rows, "llrrrrr"),
        raw_rates_section(scenarios, runs),
        log_errors_section(runs),
        params=params,
        facts=bench.facts,
    )
    payload = {
        "machine": bench.facts,
        "parameters": params,
        "summary": summary,
        "runs": [r.as_dict() for r in runs],
    }
    write_report(args.output_dir, "throughput", text, payload)
    return 0
