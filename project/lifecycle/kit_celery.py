"""The kit's app class: what a kit app does differently from a plain ``Celery`` object.

* ``send_task`` checks arguments by task name (:mod:`project.lifecycle.checks`) and goes through
  the middleware's ``before_apply``, like ``Task.apply_async``, so a long delay waits in Redis's
  durable schedule whichever way a task is sent.
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
        # A producer's call, not Celery re-sending a retry or a worker publishing a chain step.
        if "retries" not in options and "parent_id" not in options:
            check_by_name(self, name, args, kwargs, options)
        if not self.conf.task_always_eager:
            from project.lifecycle.kit import kit_of

            result = kit_of(self).pipeline.before_apply(self, name, args, kwargs, dict(options))
            if result is not None:
                return result
        return super().send_task(name, args, kwargs, **options)

    def _get_backend(self) -> Any:
        from project.results.backend import kit_backend

        backend, url = backends.by_url(self.backend_cls or self.conf.result_backend, self.loader)
        return kit_backend(backend)(app=self, url=url)
