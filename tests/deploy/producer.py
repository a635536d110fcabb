"""``python -m tests.deploy.producer QUEUE=TASK[*COUNT] ...``: publish tasks by name with the
kit's own app, to the Redis of ``REDIS_URL`` (a process of its own: the kit reads it once)."""

from __future__ import annotations

import sys


def main(specs: list[str]) -> None:
    from project import app

    for spec in specs:
        queue, _, task = spec.partition("=")
        name, _, count = task.partition("*")
        for _ in range(int(count or 1)):
            app.send_task(name, queue=queue)


if __name__ == "__main__":
    main(sys.argv[1:])
