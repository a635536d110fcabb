"""``python -m benchmarks <command>``: the kit's benchmarks, one sub-command each.

Each run starts its own Redis and workers and removes them on the way out, also on Ctrl-C or
SIGTERM (turned into the same KeyboardInterrupt so one cleanup path serves both).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .bulk import bulk_command
from .commands import enqueue_command, telemetry_command
from .harness import ROOT, ProducerError, private_redis
from .images import add_parser as add_images_parser
from .images import run as images_command
from .machine import machine_facts
from .measure import POLL_INTERVAL, BenchmarkError
from .overrides import OverrideError
from .report import markdown, summarize, write_results
from .throughput import run_scenarios, select

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
    throughput.add_argument("--tasks", type=_positive, default=None,
                            help=f"tasks per run (default {DEFAULT_TASKS}, {QUICK_TASKS} "
                            "with --quick)")
    throughput.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT,
                            help=f"runs per scenario, interleaved (default {DEFAULT_REPEAT})")
    throughput.add_argument("--quick", action="store_true",
                            help=f"{QUICK_TASKS} tasks per run unless --tasks says otherwise")
    throughput.add_argument("--scenario", action="append", default=[], metavar="KEY",
                            help="run only this scenario (repeatable); default: all")
    throughput.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT,
                            help="where throughput.md and throughput.json go "
                            "(default benchmarks/results)")
    for name, help_text in (
        ("telemetry", "kit worker tasks/s with telemetry off, exporting over OTLP, collector "
         "down, no endpoint"),
        ("enqueue", "producer enqueues/s: apply_async vs enqueue_unique, telemetry off and on"),
        ("bulk", "producer tasks/s: enqueue_many vs a loop of apply_async (target 10x)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--tasks", type=_positive, default=None,
                         help=f"tasks per run (default {DEFAULT_TASKS}, {QUICK_TASKS} "
                         "with --quick)")
        sub.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT,
                         help=f"runs per scenario, interleaved (default {DEFAULT_REPEAT})")
        sub.add_argument("--quick", action="store_true",
                         help=f"{QUICK_TASKS} tasks per run unless --tasks says otherwise")
        sub.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT,
                         help=f"where {name}.md and {name}.json go (default benchmarks/results)")
    add_images_parser(commands, DEFAULT_OUTPUT)
    return parser


def throughput_command(args: argparse.Namespace, command: str) -> int:
    tasks: int = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    scenarios = select(args.scenario)
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="kit-bench-logs-") as logs:
        facts = machine_facts(redis.version())
        runs = run_scenarios(
            redis, scenarios, tasks=tasks, repeat=args.repeat, workdir=Path(logs)
        )
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
        tasks: int = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
        if args.command == "telemetry":
            return telemetry_command(tasks, args.repeat, args.output_dir, command)
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
