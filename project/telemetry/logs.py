"""Every log record carries ``trace_id`` and ``span_id``, so a log line leads to its trace.

A log record factory adds the two fields (zeros outside a span), so any format may use
``%(trace_id)s`` and ``%(span_id)s``; the worker's task log format does.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

__all__ = ["TASK_LOG_FORMAT", "install_log_correlation"]

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
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
