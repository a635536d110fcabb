"""The kit's configuration: every environment variable it reads, parsed in one place.

Each variable has a documented default (the ``DEFAULT_*`` constants, also in the README's
table). A malformed value raises :class:`~project.errors.ConfigError` naming the variable and
what it accepts, so a worker, beat or ``kit up`` refuses to start rather than run half-configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from project.config.env import Env as _Env
from project.errors import ConfigError
from project.periodic.cron import CronEntry, parse_entries

__all__ = [
    "QUEUE_NAMES",
    "Settings",
    "TelemetrySettings",
    "current_settings",
    "load_settings",
    "load_telemetry_settings",
    "redacted_url",
]

#: The kit's standard queues, most urgent first (Asynq's critical/default/low). Workers consume
#: every queue named in KIT_QUEUE_WEIGHTS, which defaults to these three.
QUEUE_NAMES: tuple[str, ...] = ("critical", "default", "low")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE_WEIGHTS = "critical=6,default=3,low=1"
DEFAULT_PREFETCH_MULTIPLIER = 1
DEFAULT_VISIBILITY_TIMEOUT = 60  # seconds: live workers renew their leases (project.broker.lease)
DEFAULT_RESULT_EXPIRES = 86_400  # seconds (one day)
DEFAULT_SOFT_TIME_LIMIT = 300  # seconds
DEFAULT_TIME_LIMIT = 360  # seconds
DEFAULT_SOFT_SHUTDOWN_TIMEOUT = 30.0  # seconds, the seed's ShutdownTimeout
DEFAULT_MAX_RETRIES = 10
DEFAULT_RETRY_BACKOFF = 2.0  # seconds before the first retry
DEFAULT_RETRY_BACKOFF_MAX = 600.0  # seconds, cap on any single delay
DEFAULT_RETRY_JITTER = 0.5  # a delay is drawn from [d * (1 - jitter), d]
DEFAULT_PRIORITY = 5  # 0 is the most urgent, 9 the least (kombu's Redis convention)
DEFAULT_ARCHIVE_MAX_SIZE = 100_000  # records; the oldest are trimmed beyond this
DEFAULT_STATE_DIR = "var"
DEFAULT_FLOWER_ADDRESS = "127.0.0.1"
DEFAULT_FLOWER_PORT = 5555
DEFAULT_TIMEZONE = "UTC"
DEFAULT_BACKUP_DIR = "var/backups"
DEFAULT_BACKUP_KEEP = 7  # newest backups kept per database
DEFAULT_ALERT_BACKLOG = 10_000  # messages waiting in one queue (the seed's alert)
DEFAULT_ALERT_FAILURE_RATE = 0.05  # failed / (processed + failed) (the seed's alert)
DEFAULT_HEALTH_WINDOW = 300  # seconds of task counters the failure rate is computed over
DEFAULT_BEAT_LOCK_TIMEOUT = 30  # seconds; a standby beat takes over this long after a crash
DEFAULT_DURABLE_DELAY_THRESHOLD = 60.0  # seconds; longer delays wait in Redis, not a worker
DEFAULT_FORWARDER_INTERVAL = 1.0  # seconds between checks for due delayed tasks
DEFAULT_SERVICE_NAME = "celery-kit"
DEFAULT_METRIC_EXPORT_INTERVAL = 60_000  # milliseconds (the OpenTelemetry default)
DEFAULT_OTEL_FLUSH_TIMEOUT = 5.0  # seconds a process may spend flushing telemetry as it exits
DEFAULT_PROMETHEUS_HOST = "localhost"  # the OpenTelemetry Prometheus exporter's defaults
DEFAULT_PROMETHEUS_PORT = 9464
DEFAULT_IMAGE_STORAGE_ROOT = "var/images"  # image tasks' paths are relative to this directory
DEFAULT_IMAGE_MAX_PIXELS = 50_000_000  # a decoded RGBA frame of this size is 200 MB
#: Pillow refuses anything above twice its own MAX_IMAGE_PIXELS whatever the kit allows.
IMAGE_MAX_PIXELS_CEILING = 178_956_970
DEFAULT_IMAGE_MAX_DIMENSION = 10_000  # pixels per side of a requested output
DEFAULT_IMAGE_MAX_BYTES = 100 * 1024 * 1024  # a source file larger than this is not read
DEFAULT_IMAGE_MAX_FRAMES = 300  # frames of an animation processed with frames="all"
DEFAULT_SMTP_HOST = "localhost"
DEFAULT_SMTP_SECURITY = "starttls"  # never plain text over the network unless asked for
#: The port each SMTP_SECURITY mode uses unless SMTP_PORT says otherwise (RFC 8314, RFC 6409).
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_SMTP_TIMEOUT = 10.0  # seconds to connect (and complete the TLS handshake)
DEFAULT_SMTP_COMMAND_TIMEOUT = 60.0  # seconds per SMTP reply (RFC 5321 allows minutes)
DEFAULT_MAIL_MAX_BYTES = 10 * 1024 * 1024  # a whole message, encoded, attachments included
DEFAULT_MAIL_RATE_SCOPE = "domain"
DEFAULT_MAIL_DEDUP_TTL = 7 * 86_400  # seconds a Message-ID is remembered as sent


@dataclass(frozen=True)
class Settings:
    """Parsed configuration. Build it with :func:`load_settings`; fields carry units."""

    redis_url: str = DEFAULT_REDIS_URL
    result_backend: str = ""
    # rediss:// only: PEM files; the server's certificate is always verified (host name too).
    redis_tls_ca_file: str = ""  # "" trusts the system's CA bundle
    redis_tls_cert_file: str = ""  # a client certificate, for servers that ask for one
    redis_tls_key_file: str = ""
    # sentinel:// URLs only: the name Sentinel monitors the primary under.
    sentinel_master: str = ""
    queue_weights: dict[str, int] = field(
        default_factory=lambda: {"critical": 6, "default": 3, "low": 1}
    )
    strict_priority: bool = False
    task_events: bool = True  # Flower's live task views; off for throughput
    concurrency: int | None = None  # None: Celery's default, one process per CPU
    prefetch_multiplier: int = DEFAULT_PREFETCH_MULTIPLIER
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    result_expires: int = DEFAULT_RESULT_EXPIRES
    soft_time_limit: int = DEFAULT_SOFT_TIME_LIMIT
    time_limit: int = DEFAULT_TIME_LIMIT
    soft_shutdown_timeout: float = DEFAULT_SOFT_SHUTDOWN_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: float = DEFAULT_RETRY_JITTER
    default_priority: int = DEFAULT_PRIORITY
    archive_max_size: int = DEFAULT_ARCHIVE_MAX_SIZE
    imports: tuple[str, ...] = ()
    databases: dict[str, str] = field(default_factory=dict)  # name -> URL ("main": DATABASE_URL)
    backup_dir: str = DEFAULT_BACKUP_DIR
    backup_keep: int = DEFAULT_BACKUP_KEEP
    cleanup_dirs: tuple[str, ...] = ()
    alert_backlog: int = DEFAULT_ALERT_BACKLOG
    alert_failure_rate: float = DEFAULT_ALERT_FAILURE_RATE
    health_window: int = DEFAULT_HEALTH_WINDOW
    beat_overrides: dict[str, CronEntry] = field(default_factory=dict)
    beat_lock_timeout: int = DEFAULT_BEAT_LOCK_TIMEOUT
    durable_delay_threshold: float = DEFAULT_DURABLE_DELAY_THRESHOLD  # 0: never durable
    forwarder_interval: float = DEFAULT_FORWARDER_INTERVAL
    timezone: str = DEFAULT_TIMEZONE
    state_dir: str = DEFAULT_STATE_DIR
    flower_address: str = DEFAULT_FLOWER_ADDRESS
    flower_port: int = DEFAULT_FLOWER_PORT
    flower_basic_auth: str | None = None
    image_storage_root: str = DEFAULT_IMAGE_STORAGE_ROOT
    image_max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS
    image_max_dimension: int = DEFAULT_IMAGE_MAX_DIMENSION
    image_max_bytes: int = DEFAULT_IMAGE_MAX_BYTES
    image_max_frames: int = DEFAULT_IMAGE_MAX_FRAMES
    smtp_host: str = DEFAULT_SMTP_HOST
    smtp_port: int = SMTP_DEFAULT_PORTS[DEFAULT_SMTP_SECURITY]
    smtp_security: str = DEFAULT_SMTP_SECURITY  # none, starttls or tls
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_ca_file: str | None = None  # None: the system's trusted CAs
    smtp_from: str | None = None  # the sender when a task names none
    smtp_timeout: float = DEFAULT_SMTP_TIMEOUT
    smtp_command_timeout: float = DEFAULT_SMTP_COMMAND_TIMEOUT
    mail_template_dir: str | None = None  # None: templates are refused
    mail_max_bytes: int = DEFAULT_MAIL_MAX_BYTES
    mail_rate_limit: tuple[int, float] | None = None  # (messages, per seconds); None: no limit
    mail_rate_scope: str = DEFAULT_MAIL_RATE_SCOPE  # domain or global
    mail_dedup_ttl: int = DEFAULT_MAIL_DEDUP_TTL


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise ConfigError on the first malformed one."""
    env = _Env(os.environ if environ is None else environ)
    redis_url = env.redis_url("REDIS_URL", DEFAULT_REDIS_URL)
    soft = env.integer("KIT_TASK_SOFT_TIME_LIMIT", DEFAULT_SOFT_TIME_LIMIT, minimum=1)
    hard = env.integer("KIT_TASK_TIME_LIMIT", DEFAULT_TIME_LIMIT, minimum=1)
    if hard <= soft:
        raise ConfigError(
            "KIT_TASK_TIME_LIMIT",
            str(hard),
            f"a whole number of seconds greater than KIT_TASK_SOFT_TIME_LIMIT ({soft}), "
            "so a task gets its soft-limit exception before it is killed",
        )
    backoff = env.number("KIT_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF, minimum=0.0)
    security = env.choice("SMTP_SECURITY", DEFAULT_SMTP_SECURITY, ("none", "starttls", "tls"))
    tls_cert = env.optional_file("KIT_REDIS_TLS_CERT_FILE")
    tls_key = env.optional_file("KIT_REDIS_TLS_KEY_FILE")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError(
            "KIT_REDIS_TLS_KEY_FILE" if tls_cert else "KIT_REDIS_TLS_CERT_FILE",
            "",
            "a PEM file whenever the other of KIT_REDIS_TLS_CERT_FILE / KIT_REDIS_TLS_KEY_FILE "
            "is set (a client certificate needs its key)",
        )
    sentinel_master = env.text("KIT_SENTINEL_MASTER", "")
    if redis_url.startswith("sentinel://") and not sentinel_master:
        raise ConfigError(
            "KIT_SENTINEL_MASTER",
            "",
            "the primary's name in Sentinel (sentinel monitor <name> ...) whenever REDIS_URL "
            "is a sentinel:// URL",
        )
    return Settings(
        redis_url=redis_url,
        sentinel_master=sentinel_master,
        result_backend=env.redis_url("KIT_RESULT_BACKEND", _next_database(redis_url)),
        redis_tls_ca_file=env.optional_file("KIT_REDIS_TLS_CA_FILE"),
        redis_tls_cert_file=tls_cert,
        redis_tls_key_file=tls_key,
        queue_weights=env.weights("KIT_QUEUE_WEIGHTS", DEFAULT_QUEUE_WEIGHTS),
        strict_priority=env.boolean("KIT_STRICT_PRIORITY", False),
        task_events=env.boolean("KIT_TASK_EVENTS", True),
        concurrency=env.optional_integer("KIT_CONCURRENCY", minimum=1),
        prefetch_multiplier=env.integer(
            "KIT_PREFETCH_MULTIPLIER", DEFAULT_PREFETCH_MULTIPLIER, minimum=1
        ),
        visibility_timeout=env.integer(
            "KIT_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT, minimum=1
        ),
        result_expires=env.integer("KIT_RESULT_EXPIRES", DEFAULT_RESULT_EXPIRES, minimum=1),
        soft_time_limit=soft,
        time_limit=hard,
        soft_shutdown_timeout=env.number(
            "KIT_SOFT_SHUTDOWN_TIMEOUT", DEFAULT_SOFT_SHUTDOWN_TIMEOUT, minimum=0.0
        ),
        max_retries=env.integer("KIT_MAX_RETRIES", DEFAULT_MAX_RETRIES, minimum=0),
        retry_backoff=backoff,
        retry_backoff_max=env.number(
            "KIT_RETRY_BACKOFF_MAX", max(DEFAULT_RETRY_BACKOFF_MAX, backoff), minimum=backoff
        ),
        retry_jitter=env.number("KIT_RETRY_JITTER", DEFAULT_RETRY_JITTER, minimum=0.0, maximum=1.0),
        default_priority=env.integer(
            "KIT_DEFAULT_PRIORITY", DEFAULT_PRIORITY, minimum=0, maximum=9
        ),
        archive_max_size=env.integer("KIT_ARCHIVE_MAX_SIZE", DEFAULT_ARCHIVE_MAX_SIZE, minimum=1),
        imports=env.names("KIT_IMPORTS"),
        databases=_databases(env),
        backup_dir=env.text("KIT_BACKUP_DIR", DEFAULT_BACKUP_DIR),
        backup_keep=env.integer("KIT_BACKUP_KEEP", DEFAULT_BACKUP_KEEP, minimum=1),
        cleanup_dirs=env.paths("KIT_CLEANUP_DIRS"),
        alert_backlog=env.integer("KIT_ALERT_BACKLOG", DEFAULT_ALERT_BACKLOG, minimum=1),
        alert_failure_rate=env.number(
            "KIT_ALERT_FAILURE_RATE", DEFAULT_ALERT_FAILURE_RATE, minimum=0.0, maximum=1.0
        ),
        health_window=env.integer("KIT_HEALTH_WINDOW", DEFAULT_HEALTH_WINDOW, minimum=60),
        beat_overrides=parse_entries("KIT_BEAT_SCHEDULE", env.optional_text("KIT_BEAT_SCHEDULE")),
        beat_lock_timeout=env.integer(
            "KIT_BEAT_LOCK_TIMEOUT", DEFAULT_BEAT_LOCK_TIMEOUT, minimum=5
        ),
        durable_delay_threshold=env.number(
            "KIT_DURABLE_DELAY_THRESHOLD", DEFAULT_DURABLE_DELAY_THRESHOLD, minimum=0.0
        ),
        forwarder_interval=env.number(
            "KIT_FORWARDER_INTERVAL", DEFAULT_FORWARDER_INTERVAL, minimum=0.05
        ),
        timezone=env.text("KIT_TIMEZONE", DEFAULT_TIMEZONE),
        state_dir=env.text("KIT_STATE_DIR", DEFAULT_STATE_DIR),
        flower_address=env.text("FLOWER_ADDRESS", DEFAULT_FLOWER_ADDRESS),
        flower_port=env.integer("FLOWER_PORT", DEFAULT_FLOWER_PORT, minimum=1, maximum=65535),
        flower_basic_auth=env.basic_auth("FLOWER_BASIC_AUTH"),
        image_storage_root=env.text("KIT_IMAGE_STORAGE_ROOT", DEFAULT_IMAGE_STORAGE_ROOT),
        image_max_pixels=env.integer(
            "KIT_IMAGE_MAX_PIXELS",
            DEFAULT_IMAGE_MAX_PIXELS,
            minimum=1,
            maximum=IMAGE_MAX_PIXELS_CEILING,
        ),
        image_max_dimension=env.integer(
            "KIT_IMAGE_MAX_DIMENSION", DEFAULT_IMAGE_MAX_DIMENSION, minimum=1, maximum=65_500
        ),
        image_max_bytes=env.integer("KIT_IMAGE_MAX_BYTES", DEFAULT_IMAGE_MAX_BYTES, minimum=1),
        image_max_frames=env.integer("KIT_IMAGE_MAX_FRAMES", DEFAULT_IMAGE_MAX_FRAMES, minimum=1),
        smtp_host=env.text("SMTP_HOST", DEFAULT_SMTP_HOST),
        smtp_port=env.integer("SMTP_PORT", SMTP_DEFAULT_PORTS[security], minimum=1, maximum=65535),
        smtp_security=security,
        smtp_username=env.optional_text("SMTP_USERNAME"),
        smtp_password=env.optional_text("SMTP_PASSWORD"),
        smtp_ca_file=env.optional_text("SMTP_CA_FILE"),
        smtp_from=env.optional_text("SMTP_FROM"),
        smtp_timeout=env.number("SMTP_TIMEOUT", DEFAULT_SMTP_TIMEOUT, minimum=0.1),
        smtp_command_timeout=env.number(
            "SMTP_COMMAND_TIMEOUT", DEFAULT_SMTP_COMMAND_TIMEOUT, minimum=0.1
        ),
        mail_template_dir=env.optional_text("KIT_MAIL_TEMPLATE_DIR"),
        mail_max_bytes=env.integer("KIT_MAIL_MAX_BYTES", DEFAULT_MAIL_MAX_BYTES, minimum=1024),
        mail_rate_limit=env.rate("KIT_MAIL_RATE_LIMIT"),
        mail_rate_scope=env.choice(
            "KIT_MAIL_RATE_LIMIT_SCOPE", DEFAULT_MAIL_RATE_SCOPE, ("domain", "global")
        ),
        mail_dedup_ttl=env.integer("KIT_MAIL_DEDUP_TTL", DEFAULT_MAIL_DEDUP_TTL, minimum=60),
    )


@dataclass(frozen=True)
class TelemetrySettings:
    """The OpenTelemetry variables the kit acts on; the SDK and exporters read the rest
    (headers, certificates, timeouts, compression, sampler, resource attributes) themselves."""

    disabled: bool = False
    service_name: str = DEFAULT_SERVICE_NAME
    traces_exporter: str = "otlp"
    metrics_exporter: str = "otlp"
    protocol: str = "grpc"
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    metric_export_interval: int = DEFAULT_METRIC_EXPORT_INTERVAL
    flush_timeout: float = DEFAULT_OTEL_FLUSH_TIMEOUT
    prometheus_host: str = DEFAULT_PROMETHEUS_HOST
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT


def load_telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    env = _Env(os.environ if environ is None else environ)
    endpoint = env.optional_text("OTEL_EXPORTER_OTLP_ENDPOINT")
    return TelemetrySettings(
        disabled=env.boolean("OTEL_SDK_DISABLED", False),
        service_name=env.text("OTEL_SERVICE_NAME", DEFAULT_SERVICE_NAME),
        traces_exporter=env.choice("OTEL_TRACES_EXPORTER", "otlp", ("otlp", "console", "none")),
        metrics_exporter=env.choice(
            "OTEL_METRICS_EXPORTER", "otlp", ("otlp", "prometheus", "console", "none")
        ),
        protocol=env.choice("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", ("grpc", "http/protobuf")),
        traces_endpoint=env.optional_text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or endpoint,
        metrics_endpoint=env.optional_text("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or endpoint,
        metric_export_interval=env.integer(
            "OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_METRIC_EXPORT_INTERVAL, minimum=100
        ),
        flush_timeout=env.number("KIT_OTEL_FLUSH_TIMEOUT", DEFAULT_OTEL_FLUSH_TIMEOUT, minimum=0.0),
        prometheus_host=env.text("OTEL_EXPORTER_PROMETHEUS_HOST", DEFAULT_PROMETHEUS_HOST),
        prometheus_port=env.integer(
            "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT, minimum=1, maximum=65535
        ),
    )


_DATABASE_ACCEPTS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host/db"
)


def _databases(env: _Env) -> dict[str, str]:
    """``DATABASE_URL`` is the database named "main"; ``DATABASE_URL_<NAME>`` names others."""
    found: dict[str, str] = {}
    for variable in sorted(n for n in env.names_with_prefix("DATABASE_URL")):
        url = env.optional_text(variable)
        if url is None:
            continue
        scheme = urlsplit(url).scheme
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ConfigError(variable, redacted_url(url), _DATABASE_ACCEPTS)
        name = variable.removeprefix("DATABASE_URL").lstrip("_").lower() or "main"
        found[name] = url
    return found


def redacted_url(url: str) -> str:
    """``url`` (or ';'-joined Sentinel URLs) with passwords masked, for logs and messages."""
    redacted = []
    for part in url.split(";"):
        password = urlsplit(part).password
        redacted.append(part.replace(f":{password}@", ":***@", 1) if password else part)
    return ";".join(redacted)


def _next_database(url: str) -> str:
    """The same server as ``url`` with the next database number: results beside the broker."""
    if ";" in url:  # Sentinel addresses: the database number is on each
        return ";".join(_next_database(part) for part in url.split(";"))
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        return url  # a socket URL names no database number; share it
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return urlunsplit(parts._replace(path=f"/{(db + 1) % 16}"))


_current: Settings | None = None


def current_settings() -> Settings:
    """The settings of this process, read from the environment once, on first use."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current
