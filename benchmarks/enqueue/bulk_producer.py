"""``python -m benchmarks.enqueue.bulk_producer <variant> <count>``: one timed bulk publish,
as JSON.

A fresh interpreter per run (the kit reads REDIS_URL once, at import), like
:mod:`benchmarks.enqueue.producer`. Variants: ``loop`` (``apply_async`` per task, the baseline),
``enqueue_many`` and ``enqueue_many_unique`` (every task de-duplicated). Each first publishes
a few untimed tasks the same way, so connections are open before the clock starts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["VARIANTS", "main"]

WARMUP = 20  # untimed tasks before the clock starts


def _loop(start: int, count: int) -> None:
    from benchmarks.throughput.kit_tasks import item

    for n in range(start, start + count):
        item.apply_async((n,))


def _bulk(start: int, count: int, unique: bool = False) -> None:
    from benchmarks.throughput.kit_tasks import item
    from project.enqueue.bulk import enqueue_many

    outcome = enqueue_many((item.s(n) for n in range(start, start + count)), unique=unique)
    if outcome.published != count:
        raise RuntimeError(f"published {outcome.published} of {count}")


VARIANTS: dict[str, Callable[[int, int], None]] = {
    "loop": _loop,
    "enqueue_many": _bulk,
    "enqueue_many_unique": lambda start, count: _bulk(start, count, unique=True),
}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in VARIANTS:
        print(f"usage: {{{'|'.join(VARIANTS)}}} <count>", file=sys.stderr)
        return 2
    variant, count = argv[0], int(argv[1])
    publish = VARIANTS[variant]
    publish(-WARMUP, WARMUP)
    began = time.perf_counter()
    publish(0, count)
    seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "variant": variant,
                "count": count,
                "seconds": seconds,
                "rate": count / seconds if seconds > 0 else 0.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
