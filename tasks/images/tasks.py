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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from project import kit_task
from project.lifecycle.task import KitTask
from project.storage import Storage, default_storage
from tasks.arguments import chain_steps
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
        for step in chain_steps(self.app, options):  # the image steps later in the chain
            parser = PARSERS.get(str(step.get("task")))
            if parser is not None:  # a mutable step gets its source from the step before
                parser(tuple(step.args), dict(step.kwargs), _limits(), not step.get("immutable"))


Job = Callable[[Any, Storage, Limits], dict[str, Any]]


def _image_task(name: str, queue: str, job: Job) -> Any:
    """The task ``name``: its arguments parsed (:data:`PARSERS`), then ``job`` run on the
    configured storage; the job's docstring is the task's."""

    def run(self: ImageTask, *previous: Any, **kwargs: Any) -> dict[str, Any]:
        return job(self.parse(previous, kwargs), default_storage(), _limits())

    run.__name__ = run.__qualname__ = job.__name__
    run.__doc__ = job.__doc__
    return kit_task(name=name, base=ImageTask, bind=True, default_queue=queue)(run)


resize = _image_task("image:resize", "default", jobs.resize)
watermark = _image_task("image:watermark", "low", jobs.watermark)
compress = _image_task("image:compress", "default", jobs.compress)
thumbnail = _image_task("image:thumbnail", "default", jobs.thumbnail)
