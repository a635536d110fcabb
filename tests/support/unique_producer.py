"""A producer process for the de-duplication race: N threads enqueue the same work at once.

Reads one line from stdin (the starting gun), then prints one JSON list of outcomes.
"""

from __future__ import annotations

import json
import sys
import threading

from project import DuplicateTaskError
from project.enqueue.dedup import enqueue_unique
from tests.support.tasks import add

threads = int(sys.argv[1])
barrier = threading.Barrier(threads)
outcomes: list[dict[str, str]] = []
lock = threading.Lock()


def produce() -> None:
    barrier.wait()
    try:
        outcome = {"published": enqueue_unique(add.s(40, 2)).id}
    except DuplicateTaskError as exc:
        outcome = {"holder": exc.holder_id}
    with lock:
        outcomes.append(outcome)


workers = [threading.Thread(target=produce) for _ in range(threads)]
sys.stdin.readline()
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps(outcomes))
