"""``kit batch images`` and ``kit workflow status``: start a workflow and follow it, for people.

Data (:func:`find_images`, :func:`image_rows`, :func:`status_document`: plain values) is apart
from rendering (:func:`watch`, ``render_*``: rich), so tests check each. The live bar goes to
stderr: stdout stays the result (a table, an id, JSON) for scripts. Exit codes: 0 all succeeded,
1 some failed (or Redis unreachable), 2 a wrong command (DIR outside the storage root or without
images, unknown operation or id), 124 ``--timeout``, 130 Ctrl-C. Leaving never cancels: the
workers go on, and ``kit workflow status ID`` picks the workflow up again.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
from rich import progress as bars
from rich.console import Console
from rich.table import Table
from rich.text import Text

from project.cli.ops import redis_call
from project.config import current
from project.errors import ValidationError
from project.storage import StorageSettings, clean_path
from project.workflows.canvas import TOLERANT_TASK, WorkflowHandle, load
from project.workflows.state import TOLERATED_ERROR, Progress, StepStatus
from tasks.images.batch import DEFAULT_OPERATIONS, OPERATION_DEFAULTS, STEPS_KEY, process_images
from tasks.images.decode import EXTENSION_FORMATS  # what the decoders accept, by extension

__all__ = [
    "COMMANDS",
    "ImageRow",
    "batch",
    "find_images",
    "image_rows",
    "status_document",
    "watch",
    "workflow",
]

USAGE, TIMED_OUT, INTERRUPTED = 2, 124, 130
IMAGE_SUFFIXES = frozenset(EXTENSION_FORMATS)
POLL_INTERVAL = 0.5  # seconds: one MGET per 1,000 steps each time, cheap for Redis


def fail(message: str, code: int = USAGE) -> NoReturn:
    """One line on stderr like :func:`project.cli.ops.fail`, but exit 2: the command was wrong."""
    click.echo(f"kit: {message}", err=True)
    sys.exit(code)


def find_images(directory: str, root: Path) -> list[str]:
    """The image files directly in ``root/directory`` as storage paths (``in/a.png``), sorted.

    The image tasks' own path rules (no ``..``, nothing absolute, no symlink out of the root),
    checked before publishing, so a typo costs one line instead of a batch of failed chains.
    """
    root = root.resolve()
    where = f"(DIR is relative to the image storage root {root})"
    try:
        relative = "" if directory in (".", "./") else clean_path(directory, "DIR")
    except ValidationError as exc:
        raise ValidationError(f"{exc} {where}") from None
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ValidationError(f"DIR {directory!r} leads outside the image storage root {root}")
    if not target.is_dir():
        raise ValidationError(f"DIR {directory!r} is not a directory {where}")
    found = sorted(
        entry.relative_to(root).as_posix()
        for entry in target.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES
        and not entry.name.startswith(".")  # a write in progress (storage's temporary file)
        and not entry.is_symlink()  # the tasks would refuse a link out of the root anyway
        and entry.is_file()
    )
    if not found:
        raise ValidationError(
            f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory!r} {where}"
        )
    return found


@dataclass(frozen=True)
class ImageRow:
    source: str
    status: str  # ok | failed | pending | not run
    outputs: list[dict[str, Any]]
    error: str | None = None


def step_task(step: StepStatus, meta: dict[str, Any]) -> str:
    """The task a step runs. The record names only the wrapper of a tolerant step: a batch's
    meta names its operation (step ``i.j`` runs operation ``j``), else its result, once done."""
    index = step.path.split(".")[1:]
    if step.task != TOLERANT_TASK:
        return step.task
    if meta.get("batch") == "images" and len(index) == 1:
        return f"image:{meta['operations'][int(index[0])]}"
    result = step.result if step.done and isinstance(step.result, dict) else {}
    return str((result.get(STEPS_KEY) or [{"task": step.task}])[-1]["task"])


def step_error(step: StepStatus) -> str | None:
    """``task: ErrorType: message``; a tolerated error names the task that raised it."""
    caught = step.result.get(TOLERATED_ERROR) if isinstance(step.result, dict) else None
    return f"{caught['task']}: {step.error}" if caught else step.error


def image_rows(sources: Sequence[str], steps: Sequence[StepStatus]) -> list[ImageRow]:
    """Per image of a batch (chord header member ``i`` is ``sources[i]``), from its steps.

    Read from the step results, not ``summary.json``: right even if the summary callback
    failed, and no access to the storage needed.
    """
    rows = []
    for index, source in enumerate(sources):
        chain = [s for s in steps if s.role == "step" and s.path.split(".")[0] == str(index)]
        failed = next((s for s in chain if s.failed), None)
        last = failed or (chain[-1] if chain else None)
        result = last.result if last is not None and isinstance(last.result, dict) else {}
        done, ended = chain and all(s.done for s in chain), all(s.finished for s in chain)
        status = "failed" if failed else "ok" if done else "not run" if ended else "pending"
        error = step_error(failed) if failed else None
        rows.append(ImageRow(source, status, list(result.get(STEPS_KEY, [])), error))
    return rows


def status_document(handle: WorkflowHandle) -> dict[str, Any]:
    """What ``kit workflow status --json`` prints: states and errors, not results (can be big)."""
    record, steps = handle.record, handle.steps()
    progress = Progress.of(steps)
    return {
        **{name: getattr(record, name) for name in ("id", "kind", "created", "cancelled", "meta")},
        "progress": {**asdict(progress), "total": progress.total, "finished": progress.finished},
        "steps": [
            {k: v for k, v in asdict(s).items() if k != "result"}
            | {"task": step_task(s, record.meta), "error": step_error(s)}
            for s in steps
        ],
    }


class _Rate(bars.ProgressColumn):
    """Finished steps per second (rich's own speed columns speak bytes)."""

    def render(self, task: bars.Task) -> Text:
        speed = task.speed or (task.completed / task.elapsed if task.elapsed else 0)  # average
        return Text(f"{speed:.1f} steps/s" if speed else "- steps/s")


def watch(handle: WorkflowHandle, timeout: float | None = None) -> list[StepStatus]:
    """A live bar on stderr until no step is pending; returns the final steps. TimeoutError at
    the deadline; Ctrl-C is the caller's, who says how to pick the workflow up again."""
    deadline = None if timeout is None else time.monotonic() + timeout
    counts = "[green]{task.fields[done]} done [red]{task.fields[failed]} failed[/] "
    counts += "{task.fields[pending]} pending"
    columns = [bars.TextColumn("{task.description}"), bars.BarColumn(), bars.MofNCompleteColumn()]
    columns += [bars.TextColumn(counts), _Rate(), bars.TextColumn("ETA")]
    with bars.Progress(*columns, bars.TimeRemainingColumn(), console=_console(sys.stderr)) as bar:
        row = bar.add_task(f"workflow {handle.id[:8]}", total=None, done=0, failed=0, pending=0)
        while True:
            steps = redis_call(handle.steps)
            now = Progress.of(steps)
            bar.update(row, total=now.total, completed=now.total - now.pending, **asdict(now))
            if now.finished:
                return steps
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"not finished within {timeout:g}s")
            time.sleep(POLL_INTERVAL)


def _watched(
    handle: WorkflowHandle, timeout: float | None, announce: str | None = None
) -> list[StepStatus]:
    """:func:`watch`, leaving with :func:`_left` on Ctrl-C or the timeout.

    The exit happens after the ``except`` block: inside it, the interrupted frames (and the
    result handles they hold) would live on in the traceback until the interpreter shuts
    down, when their clean-up can no longer reach Redis and prints a traceback of its own.
    """
    why, code = "", 0
    try:
        if announce is not None:  # inside: a Ctrl-C right after it is still this one's
            click.echo(announce)
        return watch(handle, timeout)
    except KeyboardInterrupt:
        why, code = "interrupted", INTERRUPTED
    except TimeoutError as exc:
        why, code = str(exc), TIMED_OUT
    _left(handle.id, why, code)


def _left(workflow_id: str, why: str, code: int) -> NoReturn:
    """Stop watching, not the work: name the workflow and the command that picks it up."""
    click.echo(f"kit: {why}; workflow {workflow_id} is not cancelled and goes on", err=True)
    click.echo(f"kit: pick it up later with: kit workflow status {workflow_id}", err=True)
    sys.exit(code)


def _console(file: TextIO | None = None) -> Console:
    # A pipe gets a width that fits the columns instead of rich's 80-column default.
    file = file or sys.stdout
    return Console(file=file, width=None if file.isatty() else 160, highlight=False)


def render_images(rows: Sequence[ImageRow], summary_path: str | None) -> None:
    table = Table("image", "status", "outputs", "error", title="batch images")
    for r in rows:
        outputs = (
            f"{o['path']} {o.get('width')}x{o.get('height')} {o.get('bytes')} B" for o in r.outputs
        )
        cells = (r.source, r.status, "\n".join(outputs), r.error or "")
        table.add_row(*map(Text, cells), style={"ok": "green", "failed": "red"}.get(r.status))
    counts = {"ok": 0, "failed": 0} | Counter(r.status for r in rows)
    line = ", ".join(f"{n} {status}" for status, n in counts.items())
    console = _console()
    console.print(table)
    console.print(line + (f"; summary in {summary_path}" if summary_path else ""), markup=False)


def render_status(doc: dict[str, Any]) -> None:
    p, console = doc["progress"], _console()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(doc["created"]))
    state = "cancelled" if doc["cancelled"] else "finished" if p["finished"] else "running"
    lines = [f"workflow {doc['id']} ({doc['kind']}), started {started}"]
    lines += [" ".join(f"{k}={json.dumps(v)}" for k, v in doc["meta"].items())]
    lines += [f"{state}: " + ", ".join(f"{p[k]} {k}" for k in ("done", "failed", "skipped"))]
    lines[-1] += f", {p['pending']} pending of {p['total']} steps"
    console.print("\n".join(line for line in lines if line), markup=False)
    table = Table("step", "task", "role", "state", "id")
    for s in doc["steps"]:
        table.add_row(*(Text(str(s[k])) for k in ("path", "task", "role", "state", "id")))
    console.print(table)
    reported: set[tuple[str, str]] = set()
    for s in (s for s in doc["steps"] if s["state"] == "FAILURE"):
        chain = s["path"].rpartition(".")[0]
        if chain and (chain, s["error"]) in reported:
            continue  # a tolerant chain passes its error along: reported at the step that failed
        reported.add((chain, s["error"]))
        console.print(f"step {s['path']} failed ({s['id']}): {s['error']}", markup=False)


@click.group()
def batch() -> None:
    """Batch pipelines over a directory of the image storage."""


@batch.command("images")
@click.argument("folder", metavar="DIR")
@click.option("--ops", default=",".join(DEFAULT_OPERATIONS), show_default=True, help="In order.")
@click.option("--output-dir", "output", default="batch", show_default=True, help="For outputs.")
@click.option("--no-wait", is_flag=True, help="Print the workflow id and exit.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS")
def batch_images(folder: str, ops: str, output: str, no_wait: bool, timeout: float | None) -> None:
    """Resize, watermark and compress every image in DIR (relative to KIT_IMAGE_STORAGE_ROOT).

    A live progress bar, then a table per image. Exit 0 if all succeeded, 1 if some failed;
    Ctrl-C (130) and --timeout (124) stop watching, not the work.
    """
    operations = [op.strip() for op in ops.split(",") if op.strip()]
    unknown = [op for op in operations if op not in OPERATION_DEFAULTS]
    if unknown or not operations:
        fail(f"--ops: unknown {', '.join(unknown) or 'empty'}; use {', '.join(OPERATION_DEFAULTS)}")
    try:
        sources = find_images(folder, Path(current(StorageSettings).root))
        handle = redis_call(lambda: process_images(sources, operations, output_dir=output))
    except ValidationError as exc:
        fail(str(exc))
    if no_wait:
        click.echo(handle.id)
        return
    steps = _watched(handle, timeout, f"workflow {handle.id}: {len(sources)} images -> {output}/")
    rows = image_rows(sources, steps)
    render_images(rows, handle.record.meta.get("summary_path"))
    sys.exit(1 if Progress.of(steps).failed or any(r.status != "ok" for r in rows) else 0)


@click.group()
def workflow() -> None:
    """Workflows (kit batch, project.workflows.canvas.run): state, progress and failures."""


@workflow.command("status")
@click.argument("workflow_id", metavar="ID")
@click.option("--watch", "follow", is_flag=True, help="Live progress until finished.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def workflow_status(workflow_id: str, follow: bool, as_json: bool) -> None:
    """Kind, progress counts and every step's state; which step failed and why.

    With --watch, exit 1 if a step failed (like kit batch images).
    """
    handle = redis_call(lambda: load(workflow_id))
    if handle is None:
        fail(f"no workflow {workflow_id!r}: unknown, or expired (kept KIT_RESULT_EXPIRES seconds)")
    if follow:
        _watched(handle, None)
    doc = redis_call(lambda: status_document(handle))
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        render_status(doc)
    if follow and doc["progress"]["failed"]:
        sys.exit(1)


#: The commands this catalog adds to ``kit`` (the ``celery_kit.commands`` entry point).
COMMANDS = (batch, workflow)
