"""``OTEL_LOGS_EXPORTER=otlp`` (opt-in): log records exported over OTLP with their trace and
span ids, so a task's log lines sit beside its spans in the backend.

The records are already redacted where they were made (:mod:`project.telemetry.logs`); the
handler also leaves out what Celery attaches beside the message (``extra={"data": …}`` holds
the task's arguments) and redacts the remaining string attributes. Export goes through a
circuit breaker shared with the span exporter: the same collector, down for both.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import Attributes

from project.telemetry.breaker import COOL_DOWN, Breaker
from project.telemetry.redaction import redact_text
from project.telemetry.settings import TelemetrySettings

__all__ = ["BreakerLogExporter", "KitLoggingHandler", "create_logger_provider"]

_PRIMITIVE = (str, bool, int, float)


class BreakerLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, breaker: Breaker | None = None) -> None:
        self.inner = inner
        self.breaker = breaker or Breaker(COOL_DOWN)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if not self.breaker.closed():
            return LogRecordExportResult.FAILURE
        result = self.inner.export(batch)
        ok = getattr(result, "name", "") == "SUCCESS"
        self.breaker.record(ok)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis)) if self.breaker.closed() else True


class KitLoggingHandler(LoggingHandler):
    """OpenTelemetry's handler, keeping only primitive attributes, redacted."""

    def __init__(self, logger_provider: LoggerProvider) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(logger_provider=logger_provider)
        # The exporters' own records would feed back into the export (and its warnings).
        self.addFilter(lambda record: not record.name.startswith("opentelemetry"))

    @staticmethod
    def _get_attributes(record: logging.LogRecord) -> Attributes:
        attributes: dict[str, Any] = dict(LoggingHandler._get_attributes(record) or {})
        return {
            key: redact_text(value) if isinstance(value, str) else value
            for key, value in attributes.items()
            if isinstance(value, _PRIMITIVE)
        }


def create_logger_provider(
    settings: TelemetrySettings, resource: Resource, breaker: Breaker | None
) -> LoggerProvider | None:
    """A provider exporting to OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, or ``None`` (not asked for)."""
    exporter: LogRecordExporter
    if settings.logs_exporter == "console":
        exporter = ConsoleLogRecordExporter()
    elif settings.logs_exporter == "otlp" and settings.logs_endpoint is not None:
        if settings.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

            exporter = BreakerLogExporter(OTLPLogExporter(), breaker)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                OTLPLogExporter as HTTPLogExporter,
            )

            exporter = BreakerLogExporter(HTTPLogExporter(), breaker)
    else:
        return None
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider
