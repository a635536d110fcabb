"""OpenTelemetry for the kit: one trace from the web request through every task and retry.

``setup_telemetry(role)`` configures this process's providers, exporters and instrumentation
(the stock Celery instrumentation plus :class:`~project.telemetry.hooks.TaskTelemetry`). Celery
processes call it themselves through :class:`WorkerTelemetry` (connected by the app): each
prefork child after ``fork`` and beat at start-up, and they flush as they exit, so
``worker_max_tasks_per_child`` recycling loses no span. Web apps that enqueue call
``setup_telemetry("producer")`` once at start-up (see ``examples/``).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import signals
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider

from project.config import current_settings, load_telemetry_settings
from project.telemetry.hooks import TaskTelemetry
from project.telemetry.logs import TASK_LOG_FORMAT, install_log_correlation
from project.telemetry.metrics import METRIC_NAMES, TaskMetrics, register_worker_gauges
from project.telemetry.providers import Providers, create_providers

__all__ = [
    "METRIC_NAMES",
    "TASK_LOG_FORMAT",
    "WorkerTelemetry",
    "setup_telemetry",
    "shutdown_telemetry",
]

logger = logging.getLogger(__name__)


@dataclass
class _ProcessTelemetry:
    pid: int
    providers: Providers
    hooks: TaskTelemetry
    flush_timeout: float


_state: _ProcessTelemetry | None = None


def setup_telemetry(
    role: str = "producer", worker: str | None = None, snapshot_dir: Path | None = None
) -> Providers | None:
    """Configure telemetry for this process once; ``None`` when disabled (OTEL_SDK_DISABLED)
    or when nothing is to be exported."""
    global _state
    settings = load_telemetry_settings()
    if settings.disabled:
        return None
    if _state is not None and _state.pid == os.getpid():
        return _state.providers
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    providers = create_providers(settings, role, worker, snapshot_dir)
    instrumentor = CeleryInstrumentor()
    if not providers.exporting:
        # Nothing to export: no SDK providers and no hooks (spans and metrics would be
        # recorded for nothing), but the stock instrumentation stays, so a caller's trace
        # context still flows through to every task this process publishes.
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        return None
    trace.set_tracer_provider(providers.tracer_provider)
    otel_metrics.set_meter_provider(providers.meter_provider)
    if not instrumentor.is_instrumented_by_opentelemetry:
        # Its only metric, flower.task.runtime.seconds, duplicates kit.task.duration (and
        # clashes with Flower's own metric name): give it a meter that records nothing.
        instrumentor.instrument(
            tracer_provider=providers.tracer_provider, meter_provider=NoOpMeterProvider()
        )
    meter = providers.meter_provider.get_meter("project")
    hooks = TaskTelemetry(TaskMetrics(meter))
    hooks.instrument()  # after the stock instrumentation: its span is current in our hooks
    if role == "worker":
        from project.broker.connections import redis_client

        app_settings = current_settings()
        register_worker_gauges(
            meter, redis_client(app_settings.redis_url), app_settings.queue_weights
        )
    _state = _ProcessTelemetry(os.getpid(), providers, hooks, settings.flush_timeout)
    return providers


def shutdown_telemetry() -> None:
    """Flush within KIT_OTEL_FLUSH_TIMEOUT and stop exporting (idempotent)."""
    global _state
    state, _state = _state, None
    if state is None or state.pid != os.getpid():
        return
    state.hooks.uninstrument()
    try:
        state.providers.shutdown(state.flush_timeout)
    except Exception:
        logger.debug("telemetry shutdown failed", exc_info=True)


class WorkerTelemetry:
    """Connects telemetry to the worker and beat life cycle; ``instrument`` is idempotent."""

    def __init__(self) -> None:
        self.hostname: str | None = None
        self.snapshot_dir: Path | None = None  # set in the main process, inherited by children
        self._metrics_server: Any = None
        self._connected = False

    def instrument(self) -> None:
        if self._connected:
            return
        load_telemetry_settings()  # a malformed OTEL_* variable stops start-up here, not later
        install_log_correlation()
        signals.worker_init.connect(self.on_worker_init, weak=False)
        signals.worker_process_init.connect(self.on_process_init, weak=False)
        signals.worker_process_shutdown.connect(self.on_process_shutdown, weak=False)
        signals.worker_shutdown.connect(self.on_worker_shutdown, weak=False)
        signals.beat_init.connect(self.on_beat_init, weak=False)
        self._connected = True

    def uninstrument(self) -> None:
        if not self._connected:
            return
        signals.worker_init.disconnect(self.on_worker_init)
        signals.worker_process_init.disconnect(self.on_process_init)
        signals.worker_process_shutdown.disconnect(self.on_process_shutdown)
        signals.worker_shutdown.disconnect(self.on_worker_shutdown)
        signals.beat_init.disconnect(self.on_beat_init)
        self._connected = False

    def on_worker_init(self, sender: Any = None, **_: Any) -> None:
        self.hostname = getattr(sender, "hostname", None)
        settings = load_telemetry_settings()
        if not settings.disabled and settings.metrics_exporter == "prometheus":
            from project.telemetry.prometheus import serve_metrics, snapshot_directory

            self.snapshot_dir = snapshot_directory(os.getpid())
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)
            self._metrics_server = serve_metrics(
                self.snapshot_dir, settings.prometheus_host, settings.prometheus_port
            )
            logger.info(
                "serving metrics on http://%s:%d/metrics",
                settings.prometheus_host,
                settings.prometheus_port,
            )
        pool = getattr(sender, "pool_cls", None)
        pool_module = getattr(pool, "__module__", str(pool))
        # Prefork: set up in each child after fork (gRPC channels and exporter threads do not
        # survive fork). Other pools run tasks in this process: set up here.
        if "prefork" not in pool_module:
            setup_telemetry("worker", self.hostname, self.snapshot_dir)

    def on_process_init(self, **_: Any) -> None:
        setup_telemetry("worker", self.hostname, self.snapshot_dir)

    def on_process_shutdown(self, **_: Any) -> None:
        shutdown_telemetry()

    def on_worker_shutdown(self, **_: Any) -> None:
        shutdown_telemetry()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None

    def on_beat_init(self, **_: Any) -> None:
        setup_telemetry("beat")
