"""Tasks defined once for every kit app: the catalog's (and a user's) ``@kit_task`` tasks.

Celery's ``shared_task`` registers a task on *every* app in the process, a Django project's own
included, and routes ``.delay()`` through whichever app is current. ``kit_task`` registers only
on apps made by ``create_app`` (each one that exists or is made later), and its module-level
name is a proxy to the task on :data:`project.app`, so ``resize.delay(...)`` in a web process
always goes to the kit's broker.

Workers import the catalog's modules through Celery's ``imports`` setting (KIT_CATALOG,
KIT_IMPORTS); ``project`` itself never imports ``tasks``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.local import Proxy

__all__ = ["bind", "kit_task"]

_lock = threading.Lock()
_definitions: list[tuple[Callable[..., Any], dict[str, Any]]] = []
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()


def _register(app: Celery, fun: Callable[..., Any], options: dict[str, Any]) -> Any:
    if options["name"] in app.tasks:
        return app.tasks[options["name"]]
    # shared=False: Celery's shared registry would put it on every app, not only kit apps.
    return app.task(shared=False, lazy=False, **options)(fun)


def bind(app: Celery) -> None:
    """Give ``app`` every kit task defined so far, and those defined later."""
    with _lock:
        _apps.add(app)

    def register_all(**_: Any) -> None:
        with _lock:
            definitions = list(_definitions)
        for fun, options in definitions:
            _register(app, fun, options)

    if app.finalized:
        register_all()
    else:
        app.on_after_finalize.connect(register_all, weak=False)


def kit_task(*, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@kit_task(name="image:resize", base=ImageTask, bind=True)``: like ``@app.task``, on
    every kit app; the decorated name is the task on :data:`project.app`."""
    full = {"name": name, **options}

    def decorate(fun: Callable[..., Any]) -> Any:
        with _lock:
            _definitions.append((fun, full))
            apps = [app for app in _apps if app.finalized]
        for app in apps:
            _register(app, fun, full)
        return Proxy(lambda: _default_task(name, fun, full))

    return decorate


def _default_task(name: str, fun: Callable[..., Any], options: dict[str, Any]) -> Any:
    import project

    app = project.app
    task = app.tasks.get(name)
    return task if task is not None else _register(app, fun, options)
