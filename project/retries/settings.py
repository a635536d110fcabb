"""Retry backoff and the archive's size."""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env

__all__ = ["RetrySettings"]

DEFAULT_MAX_RETRIES = 10
DEFAULT_RETRY_BACKOFF = 2.0  # seconds before the first retry
DEFAULT_RETRY_BACKOFF_MAX = 600.0  # seconds, cap on any single delay
DEFAULT_RETRY_JITTER = 0.5  # a delay is drawn from [d * (1 - jitter), d]
DEFAULT_ARCHIVE_MAX_SIZE = 100_000  # records; the oldest are trimmed beyond this


@dataclass(frozen=True)
class RetrySettings:
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_RETRY_BACKOFF  # seconds
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX  # seconds
    jitter: float = DEFAULT_RETRY_JITTER  # fraction
    archive_max_size: int = DEFAULT_ARCHIVE_MAX_SIZE  # records

    @classmethod
    def from_env(cls, env: Env) -> RetrySettings:
        backoff = env.number("KIT_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF, minimum=0.0)
        return cls(
            max_retries=env.integer("KIT_MAX_RETRIES", DEFAULT_MAX_RETRIES, minimum=0),
            backoff=backoff,
            backoff_max=env.number(
                "KIT_RETRY_BACKOFF_MAX", max(DEFAULT_RETRY_BACKOFF_MAX, backoff), minimum=backoff
            ),
            jitter=env.number("KIT_RETRY_JITTER", DEFAULT_RETRY_JITTER, minimum=0.0, maximum=1.0),
            archive_max_size=env.integer(
                "KIT_ARCHIVE_MAX_SIZE", DEFAULT_ARCHIVE_MAX_SIZE, minimum=1
            ),
        )
