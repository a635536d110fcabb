"""The kit's own settings, one part per concern (each defined next to the code that uses it).

``create_app(settings)`` takes a :class:`Settings`; :func:`load_settings` reads one from an
environment mapping, :func:`current_settings` this process's (read once, on first use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from project.broker.settings import BrokerSettings, RedisSettings
from project.config import current
from project.config.env import Env
from project.delay.settings import DelaySettings
from project.lifecycle.settings import TaskSettings
from project.periodic.settings import BeatSettings
from project.retries.settings import RetrySettings
from project.up.settings import UpSettings

__all__ = ["QUEUE_NAMES", "Settings", "current_settings", "load_settings"]

#: The kit's standard queues, most urgent first (Asynq's critical/default/low). Workers consume
#: every queue named in KIT_QUEUE_WEIGHTS, which defaults to these three.
QUEUE_NAMES: tuple[str, ...] = ("critical", "default", "low")


@dataclass(frozen=True)
class Settings:
    """The kit's settings, one part per concern. Build it with :func:`load_settings`."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    delay: DelaySettings = field(default_factory=DelaySettings)
    beat: BeatSettings = field(default_factory=BeatSettings)
    up: UpSettings = field(default_factory=UpSettings)

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        return cls(
            redis=RedisSettings.from_env(env),
            broker=BrokerSettings.from_env(env),
            tasks=TaskSettings.from_env(env),
            retries=RetrySettings.from_env(env),
            delay=DelaySettings.from_env(env),
            beat=BeatSettings.from_env(env),
            up=UpSettings.from_env(env),
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the kit's variables; raise ConfigError on the first malformed one."""
    return Settings.from_env(Env(os.environ if environ is None else environ))


def current_settings() -> Settings:
    """The kit's settings in this process (those of :data:`project.app`)."""
    return current(Settings)
