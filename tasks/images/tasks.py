"""The image catalog: ``image:resize``, ``image:watermark``, ``image:compress``,
``image:thumbnail``.

Thin tasks: each parses its keyword arguments (:mod:`tasks.images.validation`), then calls
the plain function in :mod:`tasks.images.jobs` on the configured storage. Retry is the
kit's rule: a refused argument, path or image is a ``PermanentError`` (archived at once: the
same bytes fail the same way every time); only storage trouble that may clear (disk full, too
many open files) is a ``TransientError``, retried with backoff.

Arguments are also checked *before* publishing (:meth:`ImageTask.apply_async`), so a caller's
mistake raises :class:`~project.errors.ValidationError` in the caller with nothing enqueued.
Celery's own publishes are not checked again: a retry (``retries`` in its options) re-sends
arguments that already passed, and the next step of a chain or a callback (sent by the worker
with ``parent_id``) would otherwise raise inside the *previous* task's success handling. Those
steps are checked at the producer instead, with the chain's first task, and by the worker.

Queues: ``resize``, ``compress`` and ``thumbnail`` serve uploads a user may be waiting for
(``default``); ``watermark`` is usually publishing work in bulk (``low``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from celery.canvas import Signature

from project import kit_task
from project.lifecycle.task import KitTask
from project.storage import default_storage
from tasks.images import jobs
from tasks.images.validation import PARSERS, Limits

__all__ = ["ImageTask", "compress", "resize", "thumbnail", "watermark"]


def _limits() -> Limits:
    return Limits.current()


class ImageTask(KitTask):
    """A catalog task whose arguments are validated before they are published."""

    default_queue: ClassVar[str | None] = "default"

    def parse(self, args: Sequence[Any], kwargs: Mapping[str, Any], chained: bool = False) -> Any:
        return PARSERS[self.name](tuple(args or ()), dict(kwargs or {}), _limits(), chained)

    def check_arguments(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        self.parse(args or (), kwargs or {})
        _validate_steps(self.app, options.get("chain") or ())


def _validate_steps(app: Any, steps: Sequence[Any]) -> None:
    """The rest of a chain (Celery passes it in reverse order), image steps checked now."""
    for step in steps:
        signature = Signature.from_dict(step, app=app) if isinstance(step, dict) else step
        parser = PARSERS.get(str(signature.get("task")))
        if parser is not None:  # a mutable step gets its source from the step before
            chained = not signature.get("immutable")
            parser(tuple(signature.args), dict(signature.kwargs), _limits(), chained)


@kit_task(name="image:resize", base=ImageTask, bind=True, default_queue="default")
def resize(self: ImageTask, *previous: Any, **kwargs: Any) -> dict[str, Any]:
    """Resize (fit, fill or exact) with Lanczos; no upscaling unless ``upscale=True``."""
    return jobs.resize(self.parse(previous, kwargs), default_storage(), _limits())


@kit_task(name="image:watermark", base=ImageTask, bind=True, default_queue="low")
def watermark(self: ImageTask, *previous: Any, **kwargs: Any) -> dict[str, Any]:
    """A text or image watermark at a corner, the centre, or tiled."""
    return jobs.watermark(self.parse(previous, kwargs), default_storage(), _limits())


@kit_task(name="image:compress", base=ImageTask, bind=True, default_queue="default")
def compress(self: ImageTask, *previous: Any, **kwargs: Any) -> dict[str, Any]:
    """Re-encode as JPEG, WebP or PNG, optionally stripped and within a byte budget."""
    return jobs.compress(self.parse(previous, kwargs), default_storage(), _limits())


@kit_task(name="image:thumbnail", base=ImageTask, bind=True, default_queue="default")
def thumbnail(self: ImageTask, *previous: Any, **kwargs: Any) -> dict[str, Any]:
    """Several thumbnail sizes from one decode."""
    return jobs.thumbnail(self.parse(previous, kwargs), default_storage(), _limits())
