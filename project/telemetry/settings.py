"""The OpenTelemetry variables the kit acts on (``OTEL_*`` and ``KIT_OTEL_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from project.config.env import Env

__all__ = ["TelemetrySettings", "load_telemetry_settings"]

DEFAULT_SERVICE_NAME = "celery-kit"
DEFAULT_METRIC_EXPORT_INTERVAL = 60_000  # milliseconds (the OpenTelemetry default)
DEFAULT_OTEL_FLUSH_TIMEOUT = 5.0  # seconds a process may spend flushing telemetry as it exits
DEFAULT_PROMETHEUS_HOST = "localhost"  # the OpenTelemetry Prometheus exporter's defaults
DEFAULT_PROMETHEUS_PORT = 9464
#: OTEL_SEMCONV_STABILITY_OPT_IN values that concern messaging (others are ignored, as the SDK
#: does): ``messaging`` = the current conventions only, ``messaging/dup`` (or unset) = both.
SEMCONV_NEW, SEMCONV_DUP = "messaging", "messaging/dup"


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
    logs_exporter: str = "none"  # opt-in: task log records over OTLP
    logs_endpoint: str | None = None
    #: "messaging" (new conventions only) or "messaging/dup" (old and new: the default, so
    #: dashboards built on the stock instrumentation's names keep working while they migrate).
    semconv: str = SEMCONV_DUP
    #: Which measurements of the kit's histograms become exemplars (the SDK's names and
    #: default): those made in a sampled span, all, or none.
    exemplar_filter: str = "trace_based"
    #: HMAC-SHA256 key for hashed identifiers (e-mail recipients); None: nothing is hashed,
    #: since an unkeyed hash of an address is reversed by hashing a list of known addresses.
    hash_key: bytes | None = field(default=None, repr=False)
    #: Recipient domains reported by name in metric attributes; any other is ``other``, so a
    #: metric's series stay bounded whatever addresses tasks are given.
    email_domains: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Env) -> TelemetrySettings:
        endpoint = env.optional_text("OTEL_EXPORTER_OTLP_ENDPOINT")
        return cls(
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
            flush_timeout=env.number(
                "KIT_OTEL_FLUSH_TIMEOUT", DEFAULT_OTEL_FLUSH_TIMEOUT, minimum=0.0
            ),
            prometheus_host=env.text("OTEL_EXPORTER_PROMETHEUS_HOST", DEFAULT_PROMETHEUS_HOST),
            prometheus_port=env.integer(
                "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT, minimum=1, maximum=65535
            ),
            logs_exporter=env.choice("OTEL_LOGS_EXPORTER", "none", ("otlp", "console", "none")),
            logs_endpoint=env.optional_text("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") or endpoint,
            semconv=_semconv(env.optional_text("OTEL_SEMCONV_STABILITY_OPT_IN")),
            exemplar_filter=env.choice(
                "OTEL_METRICS_EXEMPLAR_FILTER",
                "trace_based",
                ("trace_based", "always_on", "always_off"),
            ),
            hash_key=_key(env.optional_text("KIT_TELEMETRY_HASH_KEY")),
            email_domains=_domains(env.optional_text("KIT_TELEMETRY_EMAIL_DOMAINS")),
        )


def _semconv(raw: str | None) -> str:
    """The opt-in list is comma-separated and may name other domains (``http``)."""
    values = {v.strip() for v in (raw or "").split(",")}
    if SEMCONV_DUP in values or SEMCONV_NEW not in values:
        return SEMCONV_DUP
    return SEMCONV_NEW


def _key(raw: str | None) -> bytes | None:
    return raw.encode("utf-8") if raw else None


def _domains(raw: str | None) -> frozenset[str]:
    return frozenset(d.strip().lower() for d in (raw or "").split(",") if d.strip())


def load_telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    """Read now (telemetry is set up once per process, after fork in prefork children)."""
    return TelemetrySettings.from_env(Env(os.environ if environ is None else environ))
