"""The broker's settings: which Redis, how it is reached, and how workers consume it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from project.broker.urls import next_database
from project.config.env import Env
from project.errors import ConfigError

__all__ = ["PROCESSES_PER_CPU", "BrokerSettings", "RedisSettings", "default_concurrency"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE_WEIGHTS = "critical=6,default=3,low=1"
DEFAULT_PREFETCH_MULTIPLIER = 1
#: Default worker processes per CPU (Celery's own default is one). Measured on 2 CPUs (README,
#: Benchmarks): two per CPU beat one on no-op, 10 ms I/O (1.7x) and CPU-bound tasks alike, and
#: stay prefork, so time limits keep working; more helps I/O-bound work further but costs
#: memory (each process is a Python interpreter), so it is left to KIT_CONCURRENCY.
PROCESSES_PER_CPU = 2
DEFAULT_VISIBILITY_TIMEOUT = 60  # seconds: live workers renew their leases (project.broker.lease)
DEFAULT_RESULT_EXPIRES = 86_400  # seconds (one day)
DEFAULT_SOFT_SHUTDOWN_TIMEOUT = 30.0  # seconds, Asynq's ShutdownTimeout
DEFAULT_MAX_CONNECTIONS = 100  # per shared client and process; callers beyond it wait
DEFAULT_POOL_TIMEOUT = 20.0  # seconds a caller waits for a busy pool's connection
DEFAULT_EVENT_FLUSH_INTERVAL = 0.010  # seconds between publishes of buffered task events


@dataclass(frozen=True)
class RedisSettings:
    """Where the broker and the results live, and how to reach them (hashable: one client per
    distinct value, see :func:`project.broker.connections.redis_client`)."""

    url: str = DEFAULT_REDIS_URL
    result_backend: str = ""
    # rediss:// only: PEM files; the server's certificate is always verified (host name too).
    tls_ca_file: str = ""  # "" trusts the system's CA bundle
    tls_cert_file: str = ""  # a client certificate, for servers that ask for one
    tls_key_file: str = ""
    # sentinel:// URLs only: the name Sentinel monitors the primary under.
    sentinel_master: str = ""
    # The kit's shared clients: at most this many connections each; a caller finding them all
    # busy waits up to pool_timeout seconds for one (then RedisPoolTimeoutError).
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    pool_timeout: float = DEFAULT_POOL_TIMEOUT

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        url = env.redis_url("REDIS_URL", DEFAULT_REDIS_URL)
        tls_cert = env.optional_file("KIT_REDIS_TLS_CERT_FILE")
        tls_key = env.optional_file("KIT_REDIS_TLS_KEY_FILE")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError(
                "KIT_REDIS_TLS_KEY_FILE" if tls_cert else "KIT_REDIS_TLS_CERT_FILE",
                "",
                "a PEM file whenever the other of KIT_REDIS_TLS_CERT_FILE / "
                "KIT_REDIS_TLS_KEY_FILE is set (a client certificate needs its key)",
            )
        sentinel_master = env.text("KIT_SENTINEL_MASTER", "")
        if url.startswith("sentinel://") and not sentinel_master:
            raise ConfigError(
                "KIT_SENTINEL_MASTER",
                "",
                "the primary's name in Sentinel (sentinel monitor <name> ...) whenever "
                "REDIS_URL is a sentinel:// URL",
            )
        return cls(
            url=url,
            result_backend=env.redis_url("KIT_RESULT_BACKEND", next_database(url)),
            tls_ca_file=env.optional_file("KIT_REDIS_TLS_CA_FILE"),
            tls_cert_file=tls_cert,
            tls_key_file=tls_key,
            sentinel_master=sentinel_master,
            max_connections=env.integer(
                "KIT_REDIS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, minimum=1
            ),
            pool_timeout=env.number("KIT_REDIS_POOL_TIMEOUT", DEFAULT_POOL_TIMEOUT, minimum=0.0),
        )


def default_concurrency() -> int:
    """Worker processes when KIT_CONCURRENCY is unset: :data:`PROCESSES_PER_CPU` per CPU the
    process may run on (a container's CPU quota is not seen: deployments set the variable)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return PROCESSES_PER_CPU * max(cpus, 1)


@dataclass(frozen=True)
class BrokerSettings:
    """Queues and how a worker consumes them."""

    queue_weights: dict[str, int] = field(
        default_factory=lambda: {"critical": 6, "default": 3, "low": 1}
    )
    strict_priority: bool = False
    task_events: bool = True  # Flower's live task views
    # Task events are published in batches at most this far apart (project.broker.events).
    event_flush_interval: float = DEFAULT_EVENT_FLUSH_INTERVAL  # seconds; 0: Celery's own
    concurrency: int | None = None  # None: PROCESSES_PER_CPU per CPU (default_concurrency)
    prefetch_multiplier: int = DEFAULT_PREFETCH_MULTIPLIER
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT  # seconds
    result_expires: int = DEFAULT_RESULT_EXPIRES  # seconds
    soft_shutdown_timeout: float = DEFAULT_SOFT_SHUTDOWN_TIMEOUT  # seconds

    @classmethod
    def from_env(cls, env: Env) -> BrokerSettings:
        return cls(
            queue_weights=env.weights("KIT_QUEUE_WEIGHTS", DEFAULT_QUEUE_WEIGHTS),
            strict_priority=env.boolean("KIT_STRICT_PRIORITY", False),
            task_events=env.boolean("KIT_TASK_EVENTS", True),
            event_flush_interval=env.number(
                "KIT_EVENT_FLUSH_INTERVAL", DEFAULT_EVENT_FLUSH_INTERVAL, minimum=0.0
            ),
            concurrency=env.optional_integer("KIT_CONCURRENCY", minimum=1),
            prefetch_multiplier=env.integer(
                "KIT_PREFETCH_MULTIPLIER", DEFAULT_PREFETCH_MULTIPLIER, minimum=1
            ),
            visibility_timeout=env.integer(
                "KIT_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT, minimum=1
            ),
            result_expires=env.integer("KIT_RESULT_EXPIRES", DEFAULT_RESULT_EXPIRES, minimum=1),
            soft_shutdown_timeout=env.number(
                "KIT_SOFT_SHUTDOWN_TIMEOUT", DEFAULT_SOFT_SHUTDOWN_TIMEOUT, minimum=0.0
            ),
        )
