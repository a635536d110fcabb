"""What the kit keeps per Celery app: its settings, its middleware and its Redis client.

``create_app`` attaches one :class:`Kit` to each app it makes; every part of the kit that runs
for an app (a task, a consumer bootstep, a signal receiver) finds it with :func:`kit_of`, so
two apps in one process never share settings, Redis or state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from project.broker.connections import redis_client
from project.errors import NotAKitAppError
from project.lifecycle.middleware import Pipeline

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from project.retries.archive import Archive
    from project.settings import Settings

__all__ = ["Kit", "default_kit", "is_kit_app", "kit_of"]

_ATTRIBUTE = "kit"


class Kit:
    def __init__(self, app: Celery, settings: Settings, pipeline: Pipeline) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self._redis: tuple[Any, redis.Redis] | None = None

    @property
    def redis(self) -> redis.Redis:
        """The client the kit's own modules share for this app's broker Redis (looked up once
        per settings: every finished task asks for it)."""
        cached = self._redis
        if cached is None or cached[0] is not self.settings.redis:
            cached = self._redis = (self.settings.redis, redis_client(self.settings.redis))
        return cached[1]

    def archive(self) -> Archive:
        from project.retries.archive import Archive

        return Archive(self.redis, self.settings.retries.archive_max_size)

    @contextmanager
    def override(self, **parts: Any) -> Iterator[Settings]:
        """This app's settings with some parts replaced, for a while (tests): e.g.
        ``kit.override(delay=DelaySettings(durable_delay_threshold=1.0))``."""
        original = self.settings
        self.settings = dataclasses.replace(original, **parts)
        try:
            yield self.settings
        finally:
            self.settings = original


def attach(app: Celery, kit: Kit) -> None:
    setattr(app, _ATTRIBUTE, kit)


def is_kit_app(app: Any) -> bool:
    return isinstance(getattr(app, _ATTRIBUTE, None), Kit)


def kit_of(app: Any) -> Kit:
    """The kit of an app made by ``create_app``."""
    kit = getattr(app, _ATTRIBUTE, None)
    if not isinstance(kit, Kit):
        raise NotAKitAppError(app)
    return kit


def default_kit(app: Any = None) -> Kit:
    """The kit of ``app``, or of :data:`project.app` (made on first use) when ``app`` is None."""
    if app is None:
        import project

        app = project.app
    return kit_of(app)
