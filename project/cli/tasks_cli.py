"""``kit task ls|delete|archive|run|requeue`` and ``kit queue purge``: the state model
(:mod:`project.ops.states`) on the command line.

The commands join the ``task`` and ``queue`` groups of :mod:`project.cli.ops` when this module
is imported (``kit``'s group does that as it loads its commands). Expected failures are one
line on stderr (``kit``'s group prints the state model's named errors): exit 1 for an unknown
task or one in the wrong state, 2 for an unknown queue, state or cursor (bad usage).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.table import Table

from project.cli import USAGE
from project.cli.ops import _context, queue, redis_call, task

__all__ = ["queue_purge", "task_archive", "task_delete", "task_ls", "task_requeue", "task_run"]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str | None, width: int) -> str:
    if not text:
        return "-"
    return text if len(text) <= width else text[: width - 1] + "…"


@task.command("ls")
@click.option("--queue", "queue_name", default="default", show_default=True)
@click.option(
    "--state",
    default="pending",
    show_default=True,
    help="pending, active, scheduled, retrying, archived, completed or aggregating.",
)
@click.option("--limit", default=50, show_default=True, help="Tasks per page (at most 1000).")
@click.option("--cursor", default=None, help="The next page: the cursor the last page printed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def task_ls(queue_name: str, state: str, limit: int, cursor: str | None, as_json: bool) -> None:
    """One page of a queue's tasks in one state, in the order they run."""
    from project.ops.states import list_tasks

    app, client, _ = _context()
    page = redis_call(lambda: list_tasks(app, client, queue_name, state, limit, cursor))
    if as_json:
        click.echo(json.dumps(page.as_dict(), indent=2))
        return
    table = Table(title=f"queue {queue_name}: {state} tasks")
    columns = ("id", "task", "attempts", "enqueued", "due", "finished", "args", "kwargs", "error")
    for column in columns:
        table.add_column(column, justify="right" if column == "attempts" else "left")
    if state == "active":
        table.add_column("worker")
    for e in page.entries:
        row = [
            e.id,
            e.name,
            str(e.attempts),
            _when(e.enqueued_at),
            _when(e.due_at),
            _when(e.finished_at),
            _cut(e.args, 40),
            _cut(e.kwargs, 30),
            _cut(e.error, 50),
        ]
        table.add_row(*row, *([e.worker or "-"] if state == "active" else []))
    console = Console(width=None if sys.stdout.isatty() else 220)
    console.print(table)
    more = f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""
    console.print(f"{len(page.entries)} task(s) shown{more}")


def _act(verb: str, action: str, task_id: str) -> None:
    from project.ops import states

    call = getattr(states, f"{action}_task")
    app, client, _ = _context()
    was = redis_call(lambda: call(app, client, task_id))
    click.echo(f"{task_id}: {verb} (was {was})")


@task.command("delete")
@click.argument("task_id")
def task_delete(task_id: str) -> None:
    """Remove a pending, scheduled, retrying or archived task from Redis: it never runs."""
    _act("deleted", "delete", task_id)


@task.command("archive")
@click.argument("task_id")
def task_archive(task_id: str) -> None:
    """Move a pending, scheduled or retrying task to the archive (see `kit archived`). One a
    worker holds for its ETA is revoked there and archived under a new id, printed."""
    _held_or_not("archived", "archive", task_id)


@task.command("requeue")
@click.argument("task_id")
def task_requeue(task_id: str) -> None:
    """Publish an archived (or failed) task again, with a fresh retry budget."""
    _act("requeued", "requeue", task_id)


@task.command("run")
@click.argument("task_id")
def task_run(task_id: str) -> None:
    """Run a scheduled, retrying or archived task now. One a worker holds for its ETA is
    revoked there and a copy runs now under a new id, printed."""
    _held_or_not("pending now", "run", task_id)


def _held_or_not(verb: str, action: str, task_id: str) -> None:
    """An action that, on a task a worker holds for its ETA, goes on under :func:`copy_id`."""
    from project.ops import states
    from project.ops.states.lookup import locate

    app, client, _ = _context()
    held = redis_call(lambda: locate(app, client, task_id)).held
    was = redis_call(lambda: getattr(states, f"{action}_task")(app, client, task_id))
    if held:
        click.echo(
            f"{task_id}: was {was} in a worker's memory: revoked there; "
            f"{verb} as {states.copy_id(task_id)}"
        )
    else:
        click.echo(f"{task_id}: {verb} (was {was})")


@queue.command("purge")
@click.argument("name")
@click.option(
    "--state",
    default="pending",
    show_default=True,
    help="pending, scheduled, retrying or archived.",
)
@click.option("--yes", is_flag=True, help="Really remove them: there is no undo.")
def queue_purge(name: str, state: str, yes: bool) -> None:
    """Remove every task of queue NAME in one state, for good."""
    from project.ops.states import purge_queue

    if not yes:
        click.echo(f"kit: purging removes {state} tasks of {name} for good; add --yes", err=True)
        sys.exit(USAGE)
    app, client, _ = _context()
    removed = redis_call(lambda: purge_queue(app, client, name, state))
    click.echo(f"purged {removed} {state} task(s) from queue {name}")
