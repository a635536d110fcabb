"""OpenTelemetry for the kit: one trace from the web request through every task and retry.

Web apps that enqueue call ``setup_telemetry("producer")`` once at start-up (see ``examples/``);
Celery processes are set up by the :class:`~project.telemetry.middleware.Telemetry` middleware.
The SDK is imported only when telemetry is set up (``project.telemetry.setup``), not when this
package is: importing the kit must stay cheap for a producer.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "METRIC_NAMES",
    "TASK_LOG_FORMAT",
    "active_hooks",
    "setup_telemetry",
    "shutdown_telemetry",
]

_LAZY = {
    "METRIC_NAMES": "project.telemetry.metrics",
    "TASK_LOG_FORMAT": "project.telemetry.logs",
    "active_hooks": "project.telemetry.setup",
    "setup_telemetry": "project.telemetry.setup",
    "shutdown_telemetry": "project.telemetry.setup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'project.telemetry' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
