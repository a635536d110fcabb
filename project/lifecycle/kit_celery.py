"""The kit's app class: what a kit app does differently from a plain ``Celery`` object.

* ``send_task`` checks arguments by task name (:mod:`project.lifecycle.checks`) and goes through
  the middleware's ``before_apply``, like ``Task.apply_async``, so a long delay waits in Redis's
  durable schedule whichever way a task is sent; a registered task with plain options is then
  published by the kit (:mod:`project.enqueue.direct`), the same message for a fifth of the work.
  A ``KitTask.apply_async`` that takes Celery's path arrives here from Celery's
  ``Task.apply_async`` already checked and offered to the middleware: it goes straight on.
* Its result backend is the kit's variant of Celery's Redis one (:mod:`project.results.backend`):
  one script per result written, no subscription per published task.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.app import backends

from project.lifecycle.checks import check_by_name

__all__ = ["KitCelery"]


class KitCelery(Celery):  # type: ignore[misc]
    """A Celery app whose ``send_task`` and result backend are the kit's (module docstring)."""

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if _from_kit_apply_async(options.get("task_type")):
            # Celery's Task.apply_async on the kit's slow path: KitTask.apply_async checked
            # the call, ran before_apply and offered it to the direct path already.
            return super().send_task(name, args, kwargs, **options)
        # A producer's call, not Celery re-sending a retry or a worker publishing a chain step.
        if "retries" not in options and "parent_id" not in options:
            check_by_name(self, name, args, kwargs, options)
        if not self.conf.task_always_eager:
            from project.lifecycle.kit import kit_of

            kit = kit_of(self)
            result = kit.pipeline.before_apply(self, name, args, kwargs, dict(options))
            if result is not None:
                return result
            result = self._send_directly(kit, name, args, kwargs, options)
            if result is not None:
                return result
        return super().send_task(name, args, kwargs, **options)

    def _send_directly(
        self, kit: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any]
    ) -> Any:
        """A registered task with plain options, published by the kit (as ``apply_async`` is:
        :mod:`project.enqueue.direct`); None for Celery's path. The registry is read without
        finalizing the app, as Celery's ``send_task`` reads it."""
        from project.enqueue import direct

        if not direct.ENABLED:
            return None
        task = self._tasks.get(name)
        if task is None or not hasattr(task, "_get_exec_options"):
            return None
        plain = dict(options)
        task_id = plain.pop("task_id", None)
        return direct.direct_publisher(kit).publish(
            task, args, kwargs, task_id, plain, by_name=True
        )

    def _get_backend(self) -> Any:
        from project.results.backend import kit_backend

        backend, url = backends.by_url(self.backend_cls or self.conf.result_backend, self.loader)
        return kit_backend(backend)(app=self, url=url)


def _from_kit_apply_async(task_type: Any) -> bool:
    """Celery's ``Task.apply_async`` passes ``task_type=self`` (a user's ``send_task`` never
    does): a KitTask's means the call came through ``KitTask.apply_async``."""
    if task_type is None:
        return False
    from project.lifecycle.task import KitTask

    return isinstance(task_type, KitTask)
