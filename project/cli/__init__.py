"""The ``kit`` command. ``kit up`` runs the whole kit; operators' commands join it later."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from project.cli.ops import fail, redis_call
from project.errors import ConfigError, KitError, UnknownQueueError
from project.settings import load_settings

__all__ = ["USAGE", "main"]

#: Exit code of a command that cannot run as configured or asked (click's own, for bad usage).
USAGE = 2


#: Entry-point group through which the task catalog (or a user's package) adds commands to
#: ``kit`` (``tasks.images.cli`` adds ``batch`` and ``workflow``): ``project`` never imports
#: the catalog itself.
COMMANDS_GROUP = "celery_kit.commands"


class KitGroup(click.Group):
    """``kit``'s command group: the operator commands, and the catalog's through entry points,
    loaded when a command is looked up (a catalog CLI module may import ``project.cli``)."""

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        from project.cli import tasks_cli  # adds its commands to the task and queue groups
        from project.cli.ops import archived, queue, stats, task
        from project.cli.web import web

        del tasks_cli
        for command in (stats, archived, queue, task, web):
            self.add_command(command)
        for entry in entry_points(group=COMMANDS_GROUP):
            for command in entry.load():
                self.add_command(command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugins()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Any of the kit's own errors ends the command with one line saying what to fix,
        never a traceback: exit code 2 for a malformed variable or an unknown queue, state or
        cursor (like click's bad usage), 1 for the others (Redis unreachable, an unknown task,
        ``kit up`` already running)."""
        try:
            return super().invoke(ctx)
        except (ConfigError, UnknownQueueError) as exc:
            click.echo(f"kit: {exc}", err=True)
            sys.exit(USAGE)
        except KitError as exc:
            click.echo(f"kit: {exc}", err=True)
            sys.exit(1)


@click.group(cls=KitGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """celery-kit: reliable background tasks on Celery and Redis."""


@main.command()
def up() -> None:
    """Run Redis (embedded if none answers at REDIS_URL), a worker, beat, Flower and the console.

    Ctrl-C stops beat, Flower, the console, the worker (warm shutdown) and Redis, in that order.
    """
    from project.up.supervisor import Supervisor

    sys.exit(Supervisor(load_settings()).run())


@main.group()
def cron() -> None:
    """The beat schedule kept in Redis: list, add and remove entries at run time."""


def _app() -> Any:
    from project.lifecycle.kit import default_kit

    return default_kit().app


@cron.command("ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def cron_ls(as_json: bool) -> None:
    """Each entry with its schedule, next and last run (UTC)."""
    from project.periodic.cron_admin import list_entries

    rows = redis_call(lambda: list_entries(_app()))
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    if not rows:
        click.echo("no entries (is beat running? it installs the configured ones)")
    for row in rows:
        next_run = row.next_run.strftime("%Y-%m-%d %H:%M:%S") if row.next_run else "-"
        last_run = row.last_run.strftime("%Y-%m-%d %H:%M:%S") if row.last_run else "never"
        click.echo(
            f"{row.name:32} {row.task:24} {row.schedule:20} next {next_run}  last {last_run}"
        )


@cron.command("add")
@click.argument("name")
@click.option("--task", required=True, help="Task name, e.g. health:check.")
@click.option("--cron", "cron_line", default=None, help='Cron line, e.g. "*/5 * * * *".')
@click.option("--every", type=float, default=None, help="Seconds between runs (not --cron).")
@click.option("--args", "args_json", default="[]", help="JSON list of positional arguments.")
@click.option("--kwargs", "kwargs_json", default="{}", help="JSON object of keyword arguments.")
@click.option("--queue", default=None, help="Queue to send to (default: the task's).")
def cron_add(
    name: str,
    task: str,
    cron_line: str | None,
    every: float | None,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
) -> None:
    """Add or replace entry NAME. The task must be one the running workers have (or, when none
    answers, one that KIT_CATALOG or KIT_IMPORTS defines)."""
    from project.periodic.cron import CronEntry
    from project.periodic.cron_admin import add_entry
    from project.periodic.task_names import check_task_name

    if (cron_line is None) == (every is None):
        fail("give exactly one of --cron and --every")
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except ValueError as exc:
        fail(f"--args/--kwargs must be JSON: {exc}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        fail("--args must be a JSON list and --kwargs a JSON object")
    if every is not None and every <= 0:
        fail("--every must be a positive number of seconds")
    entry = CronEntry(name, task, cron_line or "", args, kwargs, queue, every=every)
    try:
        entry.schedule()
    except ValueError as exc:
        fail(f"entry {name!r}: {exc}")
    known = redis_call(lambda: check_task_name(_app(), task))
    if not known.known:
        fail(known.problem)
    redis_call(lambda: add_entry(_app(), entry))
    click.echo(f"added {name}: {task} {cron_line or f'every {every:g} s'} ({known.source})")


@cron.command("rm")
@click.argument("name")
def cron_rm(name: str) -> None:
    """Remove entry NAME."""
    from project.periodic.cron_admin import remove_entry

    if not redis_call(lambda: remove_entry(_app(), name)):
        fail(f"no schedule entry named {name!r} (see `kit cron ls`)")
    click.echo(f"removed {name}")


if __name__ == "__main__":
    main()
