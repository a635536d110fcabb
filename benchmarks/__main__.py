"""``python -m benchmarks <command>``: the kit's benchmarks; ``all`` runs the whole suite.

Each run starts its own Redis and workers and removes them on the way out, also on Ctrl-C or
SIGTERM (turned into the same KeyboardInterrupt so one cleanup path serves both).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from benchmarks.commands import enqueue_command, telemetry_command
from benchmarks.core.machine import machine_facts
from benchmarks.core.measure import POLL_INTERVAL, BenchmarkError
from benchmarks.core.processes import ROOT, ProducerError, private_redis
from benchmarks.enqueue.bulk import bulk_command
from benchmarks.images.scenario import add_parser as add_images_parser
from benchmarks.images.scenario import run as images_command
from benchmarks.suite.report import payload, suite_markdown
from benchmarks.suite.run import FULL, QUICK, SECTIONS, run_suite
from benchmarks.throughput.overrides import OverrideError
from benchmarks.throughput.report import markdown, summarize, write_files, write_results
from benchmarks.throughput.scenario import run_scenarios, select

DEFAULT_TASKS = 5000
QUICK_TASKS = 500
DEFAULT_REPEAT = 3
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    throughput = commands.add_parser(
        "throughput",
        help="worker tasks/s on no-op tasks: stock Celery vs the kit vs the kit minus one default",
    )
    throughput.add_argument(
        "--tasks",
        type=_positive,
        default=None,
        help=f"tasks per run (default {DEFAULT_TASKS}, {QUICK_TASKS} with --quick)",
    )
    throughput.add_argument(
        "--repeat",
        type=_positive,
        default=DEFAULT_REPEAT,
        help=f"runs per scenario, interleaved (default {DEFAULT_REPEAT})",
    )
    throughput.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_TASKS} tasks per run unless --tasks says otherwise",
    )
    throughput.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="KEY",
        help="run only this scenario (repeatable); default: all",
    )
    throughput.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where throughput.md and throughput.json go (default benchmarks/results)",
    )
    for name, help_text in (
        (
            "telemetry",
            "kit worker tasks/s with telemetry off, exporting over OTLP, collector "
            "down, no endpoint",
        ),
        ("enqueue", "producer enqueues/s: apply_async vs enqueue_unique, telemetry off and on"),
        ("bulk", "producer tasks/s: enqueue_many vs a loop of apply_async (target 10x)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--tasks",
            type=_positive,
            default=None,
            help=f"tasks per run (default {DEFAULT_TASKS}, {QUICK_TASKS} with --quick)",
        )
        sub.add_argument(
            "--repeat",
            type=_positive,
            default=DEFAULT_REPEAT,
            help=f"runs per scenario, interleaved (default {DEFAULT_REPEAT})",
        )
        sub.add_argument(
            "--quick",
            action="store_true",
            help=f"{QUICK_TASKS} tasks per run unless --tasks says otherwise",
        )
        sub.add_argument(
            "--output-dir",
            type=Path,
            default=DEFAULT_OUTPUT,
            help=f"where {name}.md and {name}.json go (default benchmarks/results)",
        )
        if name == "telemetry":
            sub.add_argument(
                "--scenario",
                action="append",
                default=[],
                metavar="KEY",
                help="run only this scenario (repeatable): off, otlp, collector-down, "
                "no-endpoint; default: all",
            )
    add_images_parser(commands, DEFAULT_OUTPUT)
    suite = commands.add_parser(
        "all",
        help="the whole suite: enqueue, processing, latency, telemetry, memory, images; "
        "one table with the targets' pass/fail",
    )
    suite.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts, one repetition: proves every scenario runs (CI)",
    )
    suite.add_argument(
        "--repeat",
        type=_positive,
        default=None,
        help=f"repetitions per scenario (default {FULL.repeat}, {QUICK.repeat} with --quick)",
    )
    suite.add_argument(
        "--only",
        action="append",
        default=[],
        choices=SECTIONS,
        help="run only this section (repeatable); default: all",
    )
    suite.add_argument(
        "--layout",
        action="append",
        default=[],
        metavar="KEY",
        help="worker layouts for processing and latency (repeatable; also the "
        "candidates in benchmarks.layouts.catalog); default: the suite's",
    )
    suite.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where all.md and all.json go (default benchmarks/results)",
    )
    return parser


def suite_command(args: argparse.Namespace, command: str) -> int:
    config = QUICK if args.quick else FULL
    if args.repeat:
        config = dataclasses.replace(config, repeat=args.repeat)
    began = time.monotonic()
    results = run_suite(config, args.only or SECTIONS, args.layout)
    wall = time.monotonic() - began
    text = suite_markdown(results, command) + f"Total wall time: {wall:.0f} s.\n"
    print(text)
    md_path, json_path = write_files(
        args.output_dir, "all", text, {**payload(results, command), "wall_seconds": wall}
    )
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


def throughput_command(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    scenarios = select(args.scenario)
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="kit-bench-logs-") as logs:
        facts = machine_facts(redis.version())
        runs = run_scenarios(redis, scenarios, tasks=tasks, repeat=args.repeat, workdir=Path(logs))
    params: dict[str, object] = {
        "command": command,
        "tasks_per_run": tasks,
        "repeat": args.repeat,
        "order": f"{args.repeat} interleaved round(s) of: " + ", ".join(s.key for s in scenarios),
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "worker": "default CLI flags and concurrency, Celery's default log level",
        "measure": "acknowledged messages (queue lists + unacked hash), first to last",
    }
    summaries = summarize(scenarios, runs)
    text = markdown(summaries, runs, facts, params)
    print(text)
    md_path, json_path = write_results(args.output_dir, summaries, runs, facts, params, text)
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        command = " ".join(["python -m benchmarks", *argv])
        if args.command == "throughput":
            return throughput_command(args, command)
        if args.command == "images":
            return images_command(args, command)
        if args.command == "all":
            return suite_command(args, command)
        tasks: int = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
        if args.command == "telemetry":
            return telemetry_command(tasks, args.repeat, args.output_dir, command, args.scenario)
        if args.command == "enqueue":
            return enqueue_command(tasks, args.repeat, args.output_dir, command)
        if args.command == "bulk":
            return bulk_command(tasks, args.repeat, args.output_dir, command)
        raise AssertionError(f"unhandled command {args.command}")
    except (BenchmarkError, OverrideError, ProducerError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; workers and Redis stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
