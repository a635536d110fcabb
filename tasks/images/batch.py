"""The batch image pipeline (``kit batch images``) and the tolerant workflow step.

``process_images(paths, operations)`` runs, per image, a chain of the image tasks (resize →
watermark → compress by default), all images in one group, and a chord callback
(``batch:summary``) that writes a JSON summary: per image, its outputs, their sizes, or its error.

Celery's chord does not run its callback when a header task fails, and a chain stops at its first
failure; either would let one corrupt image cost the whole batch its summary. So each image step
runs through ``workflow:tolerant`` (:func:`project.workflows.canvas.tolerant`): it calls the image
task in-process and turns a permanent error (or transient retries running out) into a result marked
``kit_error``; the image's later steps pass that along without running, and the callback always gets
one entry per image. A tolerated error is not archived: the summary and the workflow handle (which
counts the step as failed) are where it is reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from project import kit_task
from project.errors import ValidationError
from project.lifecycle.task import KitTask
from project.storage import default_storage
from project.workflows.canvas import (
    TOLERANT_TASK,
    WorkflowHandle,
    chain,
    chord,
    run,
    step,
    tolerant,
)
from project.workflows.state import TOLERATED_ERROR
from tasks.images.validation import PARSERS, Limits

__all__ = [
    "DEFAULT_OPERATIONS",
    "OPERATION_DEFAULTS",
    "STEPS_KEY",
    "process_images",
    "summary",
    "tolerant_step",
]

#: Operations the pipeline can chain (each returns a result with the ``path`` of its output).
OPERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "resize": {"width": 800, "height": 800},
    "watermark": {"text": "celery-kit", "position": "bottom-right"},
    "compress": {"quality": 80, "strip_metadata": True},
}
DEFAULT_OPERATIONS = ("resize", "watermark", "compress")
STEPS_KEY = "kit_steps"  # the outputs of the steps before, carried along the chain
_KEEP_SUFFIX = (".jpg", ".jpeg", ".png", ".webp", ".gif")


@kit_task(name=TOLERANT_TASK, bind=True, base=KitTask)
def tolerant_step(self: KitTask, *previous: Any, step: Mapping[str, Any]) -> Any:
    """Run ``step`` (``{"task", "args", "kwargs"}``) here; its error becomes the result."""
    before = previous[0] if previous else None
    if isinstance(before, dict) and TOLERATED_ERROR in before:
        return before  # an earlier step failed: nothing to work on, pass the error along
    history = list(before.get(STEPS_KEY, [])) if isinstance(before, dict) else []
    if isinstance(before, dict):
        previous = ({k: v for k, v in before.items() if k != STEPS_KEY},)
    task = self.app.tasks[str(step["task"])]
    try:
        result = task(*previous, *step.get("args", ()), **dict(step.get("kwargs", {})))
    except self.transient_errors as exc:
        if int(self.request.retries or 0) < int(self.max_retries or 0):
            raise  # KitTask retries it with backoff
        return _caught(step, exc, history)
    except Exception as exc:  # a tolerant step's whole point: the error is its result
        return _caught(step, exc, history)
    if not isinstance(result, dict):
        return result
    entry = {k: result[k] for k in ("path", "width", "height", "bytes", "format") if k in result}
    return {**result, STEPS_KEY: [*history, {"task": step["task"], **entry}]}


def _caught(step: Mapping[str, Any], exc: BaseException, history: list[Any]) -> dict[str, Any]:
    return {
        TOLERATED_ERROR: {"task": step["task"], "type": type(exc).__name__, "message": str(exc)},
        STEPS_KEY: history,
    }


@kit_task(name="batch:summary", base=KitTask, default_queue="default")
def summary(results: Sequence[Any], *, sources: Sequence[str], summary_path: str) -> dict[str, Any]:
    """Write (and return) the batch's summary: per image its outputs and sizes, or its error."""
    images: list[dict[str, Any]] = []
    for source, result in zip(sources, results, strict=True):
        entry: dict[str, Any] = {"source": source, "outputs": [], "error": None}
        if isinstance(result, dict):
            entry["outputs"] = list(result.get(STEPS_KEY, []))
            caught = result.get(TOLERATED_ERROR)
            if caught:
                entry["error"] = f"{caught['task']}: {caught['type']}: {caught['message']}"
        images.append(entry)
    failed = sum(1 for image in images if image["error"])
    document = {
        "images": images,
        "processed": len(images) - failed,
        "failed": failed,
        "summary_path": summary_path,
    }
    default_storage().write(summary_path, json.dumps(document, indent=2).encode())
    return {"path": summary_path, "processed": len(images) - failed, "failed": failed}


def _output_names(paths: Sequence[str]) -> list[str]:
    """A distinct output stem per source (``a.png`` and ``a.jpg`` both exist in a folder)."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        name = PurePosixPath(path).stem or "image"
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}-{count}")
    return names


def _image_chain(
    source: str,
    name: str,
    operations: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    output_dir: str,
) -> Any:
    suffix = PurePosixPath(source).suffix.lower()
    keep = suffix if suffix in _KEEP_SUFFIX else ".png"
    steps = []
    for index, operation in enumerate(operations):
        kwargs = {**OPERATION_DEFAULTS[operation], **dict(options.get(operation, {}))}
        ext = ".jpg" if operation == "compress" and "format" not in kwargs else keep
        kwargs.setdefault("dest_path", f"{output_dir}/{name}.{operation}{ext}")
        if index == 0:
            kwargs["source_path"] = source
        PARSERS[f"image:{operation}"]((), kwargs, Limits.current(), index > 0)  # caller's mistake
        steps.append(tolerant(step(f"image:{operation}", **kwargs)))
    return chain(*steps)


def process_images(
    paths: Sequence[str],
    operations: Sequence[str] = DEFAULT_OPERATIONS,
    *,
    output_dir: str = "batch",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> WorkflowHandle:
    """Start the pipeline over ``paths`` (relative to the image storage root).

    ``options`` overrides an operation's arguments (``{"resize": {"width": 300}}``). Outputs
    go to ``output_dir/<name>.<operation>.<ext>`` and the summary to ``output_dir/summary.json``.
    Arguments are checked here (:class:`ValidationError`, nothing published); an image that
    cannot be read fails only its own chain.
    """
    if not paths:
        raise ValidationError("process_images: no images given")
    unknown = [op for op in operations if op not in OPERATION_DEFAULTS]
    if unknown or not operations:
        raise ValidationError(
            f"process_images: operations must be among {', '.join(OPERATION_DEFAULTS)}, "
            f"got {list(operations)}"
        )
    options = options or {}
    output_dir = output_dir.rstrip("/")
    names = _output_names(paths)
    header = [
        _image_chain(source, name, operations, options, output_dir)
        for source, name in zip(paths, names, strict=True)
    ]
    summary_path = f"{output_dir}/summary.json"
    callback = step("batch:summary", sources=list(paths), summary_path=summary_path)
    return run(
        chord(header, callback),
        meta={
            "batch": "images",
            "images": len(paths),
            "operations": list(operations),
            "summary_path": summary_path,
        },
    )
