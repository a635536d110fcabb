"""The operator commands of ``kit``: stats, archived tasks, queue pause, task control.

Thin: parse options, call :mod:`project.ops`, print a table (or ``--json``), and turn expected
failures (Redis unreachable, unknown id or queue) into one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import redis
from rich.console import Console
from rich.table import Table

from project import keys

__all__ = ["archived", "queue", "stats", "task"]

T = TypeVar("T")

archived = click.Group("archived", help="Tasks that failed for good: list, show, requeue, delete.")
queue = click.Group("queue", help="Pause, resume and purge queues; the state is kept in Redis.")
task = click.Group(
    "task", help="One task: list a queue's, show, cancel, delete, archive, run or requeue one."
)


def fail(message: str) -> NoReturn:
    click.echo(f"kit: {message}", err=True)
    sys.exit(1)


def redis_call(call: Callable[[], T]) -> T:
    """Run ``call``; an unreachable Redis ends the command with one line."""
    try:
        return call()
    except redis.RedisError as exc:
        from project.broker.urls import redacted

        fail(f"Redis at {redacted(_kit().settings.redis.url)} is unreachable: {exc}")


def _kit() -> Any:
    """The kit of :data:`project.app` (a configuration error ends the command: ``kit``'s group
    prints it as one line and exits 2)."""
    from project.lifecycle.kit import default_kit

    return default_kit()


def _context() -> tuple[Any, redis.Redis, Any]:
    kit = _kit()
    return kit.app, kit.redis, kit.settings


def _queue_name(settings: Any, name: str) -> str:
    if name not in settings.broker.queue_weights:
        fail(f"unknown queue {name!r}; queues: {', '.join(settings.broker.queue_weights)}")
    return name


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def stats(as_json: bool) -> None:
    """Per queue: pending, active, scheduled, retrying, archived, processed and failed."""
    from project.ops.stats import collect

    app, client, settings = _context()
    snapshot = redis_call(lambda: collect(app, client, settings))
    if as_json:
        click.echo(json.dumps(snapshot.as_dict(), indent=2))
        return
    table = Table(title=f"celery-kit queues (Redis memory {snapshot.redis_memory_human})")
    columns = [
        "queue",
        "state",
        "pending",
        "active",
        "scheduled",
        "retrying",
        "archived",
        "done 1h",
        "failed 1h",
        "done 1d",
        "failed 1d",
        "oldest",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("queue", "state") else "right")
    for q in snapshot.queues:
        table.add_row(
            q.queue,
            "paused" if q.paused else "running",
            str(q.pending),
            str(q.active),
            str(q.scheduled),
            str(q.retrying),
            str(q.archived),
            str(q.processed_1h),
            str(q.failed_1h),
            str(q.processed_1d),
            str(q.failed_1d),
            _age(q.oldest_pending_age),
        )
    # A pipe gets a width that fits every column instead of rich's 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    workers = ", ".join(f"{n} ({c})" for n, c in snapshot.workers.items()) or "none answered"
    console.print(f"workers (concurrency): {workers}")


@archived.command("ls")
@click.option("--queue", "queue_name", default=None)
@click.option("--task", "task_name", default=None)
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def archived_ls(queue_name: str | None, task_name: str | None, limit: int, as_json: bool) -> None:
    from project.ops.archived import list_records

    _, client, _ = _context()
    records = redis_call(lambda: list_records(client, queue_name, task_name, limit))
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in records], indent=2, default=str))
        return
    for r in records:
        click.echo(
            f"{r.id}  {r.task:28} {r.queue or '-':9} {r.reason:18} {r.error_type}: {r.error[:60]}"
        )
    click.echo(f"{len(records)} archived task(s) shown")


def _no_archived(task_id: str) -> str:
    return f"no archived task {task_id!r} (see `kit archived ls`)"


def _json_or_fail(value: Any, missing: str) -> None:
    """``value`` as indented JSON, or ``missing`` as the command's one-line failure."""
    if value is None:
        fail(missing)
    click.echo(json.dumps(value, indent=2, default=str))


def _one_or_all(command: Callable[..., None]) -> Callable[..., None]:
    """The ``TASK_ID`` argument and the ``--all`` flag, of which a command takes exactly one
    (:func:`_targets`)."""
    every = click.option("--all", "everything", is_flag=True, help="Every archived task.")
    return click.argument("task_id", required=False)(every(command))


def _targets(task_id: str | None, everything: bool) -> list[str] | None:
    """The archived ids a command acts on; None: every one."""
    if bool(task_id) == everything:
        fail("give one task id, or --all")
    return None if everything else [str(task_id)]


@archived.command("show")
@click.argument("task_id")
def archived_show(task_id: str) -> None:
    from project.retries.archive import Archive

    _, client, _ = _context()
    record = redis_call(lambda: Archive(client, 1).get(task_id))
    _json_or_fail(None if record is None else record.__dict__, _no_archived(task_id))


@archived.command("requeue")
@_one_or_all
def archived_requeue(task_id: str | None, everything: bool) -> None:
    """Publish again with a fresh retry budget; the record goes once the publish succeeded."""
    from project.ops.archived import requeue

    ids = _targets(task_id, everything)
    app, client, _ = _context()
    if task_id and not redis_call(lambda: client.exists(keys.archive_record(task_id))):
        fail(_no_archived(task_id))
    done, skipped = redis_call(lambda: requeue(app, client, ids))
    click.echo(f"requeued {done} task(s)")
    if skipped:
        click.echo(f"skipped {len(skipped)} that cannot be published again (not JSON)")


@archived.command("delete")
@_one_or_all
def archived_delete(task_id: str | None, everything: bool) -> None:
    from project.ops.archived import delete

    ids = _targets(task_id, everything)
    _, client, _ = _context()
    removed = redis_call(lambda: delete(client, ids))
    if task_id and not removed:
        fail(_no_archived(task_id))
    click.echo(f"deleted {removed} archived task(s)")


@queue.command("pause")
@click.argument("name")
def queue_pause(name: str) -> None:
    """Stop consuming NAME on every worker; its messages wait in Redis."""
    _set_paused(name, True)


@queue.command("resume")
@click.argument("name")
def queue_resume(name: str) -> None:
    _set_paused(name, False)


def _set_paused(name: str, paused: bool) -> None:
    from project.broker.pause import pause, resume

    _, client, settings = _context()
    queue_name = _queue_name(settings, name)
    changed = redis_call(lambda: (pause if paused else resume)(client, queue_name))
    done, unchanged = ("paused", "was already paused") if paused else ("resumed", "was not paused")
    click.echo(f"queue {name} {done if changed else unchanged}")


@task.command("show")
@click.argument("task_id")
def task_show(task_id: str) -> None:
    from project.ops.tasks import show

    app, client, _ = _context()
    info = redis_call(lambda: show(app, client, task_id))
    _json_or_fail(
        info, f"no task {task_id!r} is known: not queued durably, held, finished or archived"
    )


@task.command("cancel")
@click.argument("task_id")
@click.option("--terminate", is_flag=True, help="Also stop it if it is running.")
def task_cancel(task_id: str, terminate: bool) -> None:
    from project.ops.tasks import cancel

    app, client, _ = _context()
    click.echo(f"{task_id}: {redis_call(lambda: cancel(app, client, task_id, terminate))}")
