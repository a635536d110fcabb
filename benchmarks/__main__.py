"""``python -m benchmarks <command>``: the kit's benchmarks; ``all`` runs the whole suite.

Run from the repository root (benchmarks/ is not installed): each command starts its own
Redis, workers and OTLP receiver and removes them on the way out, also on Ctrl-C or SIGTERM
(turned into the same KeyboardInterrupt so one cleanup path serves both). Where each
command's code lives: ``benchmarks/<family>/command.py`` (the map: benchmarks/__init__.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from benchmarks.core.measure import BenchmarkError
from benchmarks.core.processes import ROOT, ProducerError
from benchmarks.enqueue import command as enqueue
from benchmarks.hooks import command as hooks
from benchmarks.images import command as images
from benchmarks.images.scenario import DEFAULT_TARGETS
from benchmarks.suite import command as suite
from benchmarks.suite.run import FULL, QUICK, SECTIONS
from benchmarks.telemetry import command as telemetry
from benchmarks.throughput import command as throughput
from benchmarks.throughput.overrides import OverrideError

__all__ = ["build_parser", "main"]

DEFAULT_TASKS = 5000
QUICK_TASKS = 500
DEFAULT_REPEAT = 3
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results"

Command = Callable[[argparse.Namespace, str], int]
#: The commands that run one benchmark a number of tasks at a time: (name, help, its code)
COUNTED: tuple[tuple[str, str, Command], ...] = (
    (
        "throughput",
        "worker tasks/s on no-op tasks: stock Celery vs the kit vs the kit minus one default",
        throughput.run,
    ),
    (
        "telemetry",
        "kit worker tasks/s with telemetry off, exporting over OTLP, collector down, no endpoint",
        telemetry.run,
    ),
    (
        "enqueue",
        "producer enqueues/s: apply_async vs enqueue_unique, telemetry off and on",
        enqueue.enqueue,
    ),
    ("bulk", "producer tasks/s: enqueue_many vs a loop of apply_async (target 20x)", enqueue.bulk),
)
SCENARIO_HELP = {
    "throughput": "run only this scenario (repeatable); default: all",
    "telemetry": "run only this scenario (repeatable): off, otlp, collector-down, "
    "no-endpoint; default: all",
}
COMMANDS: dict[str, Command] = {
    **{name: code for name, _, code in COUNTED},
    "images": images.run,
    "hooks": hooks.run,
    "all": suite.run,
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _output_dir(sub: argparse.ArgumentParser, *names: str) -> None:
    sub.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where {' and '.join(names)} go (default benchmarks/results)",
    )


def _add_counted(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text, _ in COUNTED:
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
        if name in SCENARIO_HELP:
            sub.add_argument(
                "--scenario", action="append", default=[], metavar="KEY", help=SCENARIO_HELP[name]
            )
        _output_dir(sub, f"{name}.md", f"{name}.json")


def _add_images(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "images", help="JPEG decode+resize: the kit's draft/reduce path vs a naive full decode"
    )
    sub.add_argument(
        "--size",
        type=images.parse_size,
        default=None,
        help="source WxH (default 4000x3000, 1600x1200 with --quick)",
    )
    sub.add_argument(
        "--targets",
        type=lambda t: tuple(int(v) for v in t.split(",")),
        default=DEFAULT_TARGETS,
        help="output widths, comma-separated",
    )
    sub.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed runs per path (default {images.DEFAULT_REPEAT}, {images.QUICK_REPEAT} quick)",
    )
    sub.add_argument("--quick", action="store_true", help="a smaller source, fewer runs")
    _output_dir(sub, "images.md", "images.json")


def _add_hooks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "hooks", help="microseconds per task of each middleware hook, telemetry off and on"
    )
    sub.add_argument("--tasks", type=_positive, default=2000, help="tasks per run (default 2000)")
    sub.add_argument(
        "--attempts",
        type=_positive,
        default=20_000,
        help="attempts per run of the tight tracer loop, telemetry off and on (default 20000)",
    )
    _output_dir(sub, "hooks.md", "hooks.json")


def _add_suite(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "all",
        help="the whole suite: enqueue, processing, latency, costs, telemetry, memory, "
        "images; one table with the targets' pass/fail, and the throughput chart",
    )
    sub.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts, one repetition: proves every scenario runs (CI)",
    )
    sub.add_argument(
        "--repeat",
        type=_positive,
        default=None,
        help=f"repetitions per scenario (default {FULL.repeat}, {QUICK.repeat} with --quick)",
    )
    sub.add_argument(
        "--only",
        action="append",
        default=[],
        choices=SECTIONS,
        help="run only this section (repeatable); default: all",
    )
    sub.add_argument(
        "--layout",
        action="append",
        default=[],
        metavar="KEY",
        help="worker layouts for processing and latency (repeatable; also the "
        "candidates in benchmarks.layouts.catalog); default: the suite's",
    )
    _output_dir(sub, "all.md", "all.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_counted(commands)
    _add_images(commands)
    _add_hooks(commands)
    _add_suite(commands)
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in {name for name, _, _ in COUNTED}:
        args.tasks = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args, " ".join(["python -m benchmarks", *argv]))
    except (BenchmarkError, OverrideError, ProducerError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; workers and Redis stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
