"""``python -m benchmarks.core.producer <module:function> <count>``: one timed producer run,
as one line of JSON on stdout.

Why a subprocess per run: the kit reads REDIS_URL and the OTEL_* variables once, and
``setup_telemetry`` installs process-wide providers and signal handlers. A fresh interpreter
per run gets exactly the configuration its environment describes (set by the parent, through
:func:`benchmarks.core.processes.run_producer`), and nothing left over from the previous run.

Every run calls ``setup_telemetry("producer")`` first, as a web app does at start-up (with
OTEL_SDK_DISABLED=true that is a no-op), then imports the entry's module and calls the
function with ``count``; it returns the seconds it timed. Telemetry is shut down (spans flushed
to the receiver) after the clock stops. The entries are the benchmarks' producer-side modules:
:mod:`benchmarks.enqueue.producer` and :mod:`benchmarks.telemetry.producer`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def _entry(spec: str) -> Callable[[int], float]:
    module, _, name = spec.partition(":")
    function: Callable[[int], float] = getattr(importlib.import_module(module), name)
    return function


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or ":" not in argv[0] or not argv[1].isdigit():
        print(
            "usage: python -m benchmarks.core.producer <module:function> <count>", file=sys.stderr
        )
        return 2
    spec, count = argv[0], int(argv[1])
    from project.telemetry import setup_telemetry, shutdown_telemetry

    providers = setup_telemetry("producer")
    try:
        seconds = _entry(spec)(count)
    finally:
        shutdown_telemetry()
    result = {
        "entry": spec,
        "count": count,
        "seconds": seconds,
        "rate": count / seconds if seconds > 0 else 0.0,
        "telemetry_exporting": providers is not None,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
