"""The OpenTelemetry variables the kit acts on (``OTEL_*`` and ``KIT_OTEL_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from project.config.env import Env

__all__ = ["TelemetrySettings", "load_telemetry_settings"]

DEFAULT_SERVICE_NAME = "celery-kit"
DEFAULT_METRIC_EXPORT_INTERVAL = 60_000  # milliseconds (the OpenTelemetry default)
DEFAULT_OTEL_FLUSH_TIMEOUT = 5.0  # seconds a process may spend flushing telemetry as it exits
DEFAULT_PROMETHEUS_HOST = "localhost"  # the OpenTelemetry Prometheus exporter's defaults
DEFAULT_PROMETHEUS_PORT = 9464


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
        )


def load_telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    """Read now (telemetry is set up once per process, after fork in prefork children)."""
    return TelemetrySettings.from_env(Env(os.environ if environ is None else environ))
