"""When a delay is kept in Redis instead of a worker's memory, and how often it is checked."""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env

__all__ = ["DelaySettings"]

DEFAULT_DURABLE_DELAY_THRESHOLD = 60.0  # seconds; longer delays wait in Redis, not a worker
DEFAULT_FORWARDER_INTERVAL = 1.0  # seconds between checks for due delayed tasks


@dataclass(frozen=True)
class DelaySettings:
    durable_delay_threshold: float = DEFAULT_DURABLE_DELAY_THRESHOLD  # seconds; 0: never durable
    forwarder_interval: float = DEFAULT_FORWARDER_INTERVAL  # seconds

    @classmethod
    def from_env(cls, env: Env) -> DelaySettings:
        return cls(
            durable_delay_threshold=env.number(
                "KIT_DURABLE_DELAY_THRESHOLD", DEFAULT_DURABLE_DELAY_THRESHOLD, minimum=0.0
            ),
            forwarder_interval=env.number(
                "KIT_FORWARDER_INTERVAL", DEFAULT_FORWARDER_INTERVAL, minimum=0.05
            ),
        )
