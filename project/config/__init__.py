"""The kit's configuration: one reader of the environment, one small settings class per concern.

Each concern's settings live next to the code that uses them (``project/broker/settings.py``,
``project/retries/settings.py``, ``tasks/email/settings.py`` ...), each a frozen dataclass with
documented defaults and units and a ``from_env(env)`` that reads its variables through
:class:`~project.config.env.Env`. A malformed value raises
:class:`~project.errors.ConfigError` naming the variable and what it accepts, so a worker, beat
or ``kit`` refuses to start rather than run half-configured.

:class:`project.settings.Settings` gathers the kit's own concerns; ``create_app`` takes one.
Any settings class is read on first use with :func:`current` (cached per process). Nothing is
read at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from project.config.env import Env

__all__ = ["Env", "current", "override"]


class _FromEnv(Protocol):
    @classmethod
    def from_env(cls, env: Env) -> Any: ...


S = TypeVar("S", bound=_FromEnv)

_lock = threading.Lock()
_current: dict[type[Any], Any] = {}


def current(kind: type[S]) -> S:
    """This process's ``kind`` settings, read from the environment once, on first use."""
    with _lock:
        value = _current.get(kind)
        if value is None:
            value = _current[kind] = kind.from_env(Env(os.environ))
        return value  # type: ignore[no-any-return]


@contextmanager
def override(value: Any) -> Iterator[Any]:
    """Make ``value`` this process's current settings of its class for a while (tests)."""
    kind = type(value)
    with _lock:
        previous = _current.get(kind)
        _current[kind] = value
    try:
        yield value
    finally:
        with _lock:
            if previous is None:
                _current.pop(kind, None)
            else:
                _current[kind] = previous
