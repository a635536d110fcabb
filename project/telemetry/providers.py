"""Tracer and meter providers for one process, with OTLP exporters and a Resource.

The standard ``OTEL_*`` variables apply: the kit decides whether and how to export (see
:class:`~project.telemetry.settings.TelemetrySettings`); the exporters read endpoint, headers,
certificates, timeout and compression themselves, and the SDK reads the sampler and resource
attributes.

With no endpoint configured nothing is exported, and nothing is logged about it beyond one
line. With an endpoint that does not answer, export errors are logged once for the whole
process tree (prefork children included), then kept quiet, and a circuit breaker
(:mod:`project.telemetry.breaker`) stops export attempts for a while after each failure.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from project.telemetry.breaker import BreakerMetricExporter, BreakerSampler, BreakerSpanExporter
from project.telemetry.histograms import HistogramExporter, HistogramRegistry
from project.telemetry.messaging import OLD_ATTRIBUTES
from project.telemetry.redaction import RedactingSpanExporter
from project.telemetry.settings import SEMCONV_NEW, TelemetrySettings

__all__ = ["Providers", "build_resource", "create_providers", "warn_once_per_process_tree"]

logger = logging.getLogger(__name__)

_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk.trace.export",
)


class _OneExportWarning(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        # Shared by a process and the children it forks: one export warning per process tree.
        self.warned = multiprocessing.RawValue("b", 0)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.warned.value:
            return False
        self.warned.value = 1
        record.msg = f"{record.msg} (OpenTelemetry export problems are logged only once)"
        return True


_filter: _OneExportWarning | None = None


def warn_once_per_process_tree() -> None:
    """Let the exporters log one warning for the whole process tree (idempotent). Called in a
    worker's main process before it forks, so its children share the flag."""
    global _filter
    if _filter is None:
        _filter = _OneExportWarning()
        for name in _EXPORT_LOGGERS:
            logging.getLogger(name).addFilter(_filter)


@dataclass
class Providers:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting: bool = True  # False: no exporter at all, the providers are not installed
    logger_provider: Any = None  # OTEL_LOGS_EXPORTER=otlp: an SDK LoggerProvider
    # The kit's histograms, exported through the metric exporter (project.telemetry.histograms)
    histograms: HistogramRegistry = field(default_factory=HistogramRegistry)

    def flush(self, timeout: float) -> None:
        millis = int(timeout * 1000)
        self.tracer_provider.force_flush(millis)
        self.meter_provider.force_flush(millis)
        if self.logger_provider is not None:
            self.logger_provider.force_flush(millis)

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown(timeout_millis=timeout * 1000)
        if self.logger_provider is not None:
            self.logger_provider.shutdown()


def _package_version() -> str:
    try:
        return version("celery-kit")
    except PackageNotFoundError:
        return "0.0.0"


def build_resource(settings: TelemetrySettings, role: str, worker: str | None) -> Resource:
    """Service name and version, environment, host, role and worker; OTEL_RESOURCE_ATTRIBUTES
    and OTEL_SERVICE_NAME (read by the SDK) take precedence over these defaults."""
    host = socket.gethostname()
    defaults: dict[str, Any] = {
        "service.name": settings.service_name,
        "service.version": _package_version(),
        "service.instance.id": f"{worker or role}@{host}:{os.getpid()}",
        "deployment.environment.name": "development",
        "host.name": host,
        "process.pid": os.getpid(),
        "celery.role": role,
    }
    if worker:
        defaults["celery.worker.name"] = worker
    # Resource.create lets these defaults override OTEL_RESOURCE_ATTRIBUTES; merge the
    # environment's attributes back on top so operators win.
    return Resource.create(defaults).merge(OTELResourceDetector().detect())


def _span_processor(
    settings: TelemetrySettings,
) -> tuple[SpanProcessor, BreakerSpanExporter | None] | None:
    """The processor that exports this process's spans, and the breaker in front of its
    exporter (``None``: none, the console); ``None`` when spans are not exported."""
    if settings.traces_exporter == "console":
        return BatchSpanProcessor(ConsoleSpanExporter()), None
    if settings.traces_exporter == "none" or settings.traces_endpoint is None:
        return None
    # Under the new conventions only, the old attribute names are left out of every span.
    drop = OLD_ATTRIBUTES if settings.semconv == SEMCONV_NEW else frozenset()
    # The breaker outermost: while the collector is down, nothing is redacted, encoded or
    # sent (and BreakerSampler records no span at all).
    if settings.protocol == "grpc":
        from project.telemetry.span_export import EncodedSpanExporter, EncodingSpanProcessor

        breaker = BreakerSpanExporter(EncodedSpanExporter(drop=drop))  # it redacts
        return EncodingSpanProcessor(breaker, drop), breaker
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    breaker = BreakerSpanExporter(RedactingSpanExporter(HTTPSpanExporter(), drop))
    return BatchSpanProcessor(breaker), breaker


def _metric_exporter(settings: TelemetrySettings) -> MetricExporter | None:
    if settings.metrics_exporter == "console":
        return ConsoleMetricExporter()
    if settings.metrics_exporter in ("none", "prometheus") or settings.metrics_endpoint is None:
        return None
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return BreakerMetricExporter(OTLPMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )

    return BreakerMetricExporter(HTTPMetricExporter())


def create_providers(
    settings: TelemetrySettings,
    role: str,
    worker: str | None = None,
    snapshot_dir: Path | None = None,
) -> Providers:
    """``snapshot_dir``: where this process writes metric snapshots for the worker's
    Prometheus endpoint (``OTEL_METRICS_EXPORTER=prometheus``, worker processes only)."""
    warn_once_per_process_tree()
    resource = build_resource(settings, role, worker)
    spans = _span_processor(settings)
    breaker = spans[1] if spans is not None else None
    sampler = TracerProvider().sampler  # OTEL_TRACES_SAMPLER's choice (parent-based by default)
    if breaker is not None:
        sampler = BreakerSampler(sampler, breaker)  # record nothing while it cools down
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    if spans is not None:
        tracer_provider.add_span_processor(spans[0])
    readers: list[MetricReader] = []
    metric_exporter = _metric_exporter(settings)
    if settings.metrics_exporter == "prometheus" and snapshot_dir is not None:
        from project.telemetry.prometheus import SnapshotExporter

        metric_exporter = SnapshotExporter(snapshot_dir)
        # Snapshots must be fresher than a scrape (Prometheus scrapes every 15 s by default).
        settings = replace(
            settings, metric_export_interval=min(settings.metric_export_interval, 5_000)
        )
    histograms = HistogramRegistry(settings.exemplar_filter)
    if metric_exporter is not None:
        readers.append(
            PeriodicExportingMetricReader(
                HistogramExporter(metric_exporter, histograms, resource),
                export_interval_millis=settings.metric_export_interval,
            )
        )
    logger_provider = None
    if settings.logs_exporter != "none":
        from project.telemetry.otlp_logs import create_logger_provider

        logger_provider = create_logger_provider(
            settings, resource, breaker.breaker if breaker is not None else None
        )
    if spans is None and metric_exporter is None:
        logger.info(
            "OpenTelemetry: no OTLP endpoint configured (OTEL_EXPORTER_OTLP_ENDPOINT); "
            "traces and metrics are not exported"
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    exporting = spans is not None or bool(readers) or logger_provider is not None
    return Providers(tracer_provider, meter_provider, exporting, logger_provider, histograms)
