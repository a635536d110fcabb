"""Every log record carries ``trace_id`` and ``span_id``, so a log line leads to its trace,
and no log record carries personal data or a secret.

A log record factory adds the two fields (zeros outside a span), so any format may use
``%(trace_id)s`` and ``%(span_id)s``; the worker's task log format does. The same factory
redacts the record's message and traceback (:func:`~project.telemetry.redaction.redact_text`):
Celery logs every task's return value and error message, which quote what tasks were given.
Redacting where records are made covers every handler (console, file, OTLP) at once.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from opentelemetry import trace

from project.telemetry.redaction import redact_text

__all__ = ["TASK_LOG_FORMAT", "install_log_correlation", "redact_record"]

TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s] "
    "trace_id=%(trace_id)s span_id=%(span_id)s: %(message)s"
)
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16
_installed = False


def install_log_correlation() -> None:
    """Idempotent; wraps whatever record factory is installed (others may have wrapped too)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id, record.span_id = _NO_TRACE, _NO_SPAN
        redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def redact_record(record: logging.LogRecord) -> None:
    """Replace the record's message (and traceback) by a redacted copy when it needs one."""
    try:
        message = record.getMessage()
    except Exception:
        return  # a malformed record: logging reports it when it is formatted
    redacted = redact_text(message)
    if redacted is not message and redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact_text(text)
        if clean != text:
            # Formatters print exc_text when it is set; handlers that read exc_info themselves
            # (OpenTelemetry's) must not see the original exception.
            record.exc_text, record.exc_info = clean, None
