"""The enqueue benchmark's task on the kit's app, imported by its producer subprocess.

No worker runs it (the enqueue and bulk benchmarks time only the producer); it takes one
argument so that each enqueue can have distinct arguments, which ``enqueue_unique`` and
``enqueue_many(unique=True)`` need (they would refuse the second of two identical ones).
"""

from __future__ import annotations

from project import app

__all__ = ["item"]


@app.task(name="bench.item")
def item(n: int) -> None:
    """Never runs: the benchmark measures the enqueue only."""
