"""Telemetry set-up for one process: providers, exporters and the stock Celery instrumentation.

``setup_telemetry(role)`` configures this process's providers, exporters and instrumentation
(the stock Celery instrumentation, whose receivers the kit replaces with its own when it
exports: the publish spans of :class:`~project.telemetry.producer.ProducerTracing`, the attempt
spans of :class:`~project.telemetry.consumer.ConsumerTracing`, and
:class:`~project.telemetry.hooks.TaskTelemetry`). Celery
processes call it themselves through the :class:`~project.telemetry.middleware.Telemetry`
middleware of the kit's app: each prefork child after ``fork`` and beat at start-up, and they
flush as they exit, so ``worker_max_tasks_per_child`` recycling loses no span. Web apps that
enqueue call ``setup_telemetry("producer")`` once at start-up (see ``examples/``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider

from project.telemetry.consumer import ConsumerTracing
from project.telemetry.hooks import TaskTelemetry
from project.telemetry.messaging import MessagingMetrics, OperationDurationProcessor
from project.telemetry.metrics import TaskMetrics, register_worker_gauges
from project.telemetry.producer import ProducerTracing
from project.telemetry.providers import Providers, create_providers
from project.telemetry.settings import SEMCONV_NEW, load_telemetry_settings

if TYPE_CHECKING:
    from project.lifecycle.kit import Kit

__all__ = [
    "active_consumer",
    "active_hooks",
    "setup_telemetry",
    "shutdown_telemetry",
]  # re-exported by the package

logger = logging.getLogger(__name__)


@dataclass
class _ProcessTelemetry:
    pid: int
    providers: Providers | None  # None: nothing exported (only the trace context flows)
    hooks: TaskTelemetry | None
    consumer: ConsumerTracing
    flush_timeout: float
    log_handler: logging.Handler | None = None
    producer: ProducerTracing | None = None  # None: the stock publish receivers stay


_state: _ProcessTelemetry | None = None


def setup_telemetry(
    role: str = "producer",
    worker: str | None = None,
    snapshot_dir: Path | None = None,
    kit: Kit | None = None,
) -> Providers | None:
    """Configure telemetry for this process once; ``None`` when disabled (OTEL_SDK_DISABLED)
    or when nothing is to be exported. ``kit``: the worker's app (its queue gauges)."""
    global _state
    settings = load_telemetry_settings()
    if settings.disabled:
        return None
    if _state is not None:
        if _state.pid == os.getpid():
            return _state.providers
        _state.consumer.uninstrument()  # inherited through fork: this process makes its own
        if _state.producer is not None:
            _state.producer.uninstrument()
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    providers = create_providers(settings, role, worker, snapshot_dir)
    instrumentor = CeleryInstrumentor()
    rename = settings.semconv == SEMCONV_NEW
    if not providers.exporting:
        # Nothing to export: no SDK providers and no hooks (spans and metrics would be
        # recorded for nothing), but the instrumentation stays, so a caller's trace context
        # still flows through to every task this process publishes.
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        consumer = ConsumerTracing(instrumentor, None, rename)
        consumer.instrument()
        _state = _ProcessTelemetry(os.getpid(), None, None, consumer, settings.flush_timeout)
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
    messaging = MessagingMetrics(meter, providers.histograms)
    providers.tracer_provider.add_span_processor(OperationDurationProcessor(messaging))
    metrics = TaskMetrics(meter, providers.histograms)
    hooks = TaskTelemetry(metrics, messaging, rename=rename)
    # The kit makes each attempt's span itself, and records the attempt's metrics as the span
    # starts and ends; and each publish's span.
    consumer = ConsumerTracing(instrumentor, providers.tracer_provider, rename, hooks)
    consumer.instrument()
    producer = ProducerTracing(instrumentor, providers.tracer_provider)
    producer.instrument()
    from project.lifecycle import celery_hooks

    # After the stock instrumentation's receiver: its span is current in before_publish.
    celery_hooks.move_publish_receiver_last()
    if role == "worker" and kit is not None:
        register_worker_gauges(meter, kit.redis, kit.settings.broker.queue_weights)
    handler: logging.Handler | None = None
    if providers.logger_provider is not None:
        from project.telemetry.otlp_logs import KitLoggingHandler

        handler = KitLoggingHandler(providers.logger_provider)
        logging.getLogger().addHandler(handler)
    _state = _ProcessTelemetry(
        os.getpid(), providers, hooks, consumer, settings.flush_timeout, handler, producer
    )
    return providers


def shutdown_telemetry() -> None:
    """Flush within KIT_OTEL_FLUSH_TIMEOUT and stop exporting (idempotent)."""
    global _state
    state, _state = _state, None
    if state is None or state.pid != os.getpid():
        return
    state.consumer.uninstrument()
    if state.producer is not None:
        state.producer.uninstrument()
    if state.providers is None:
        return
    if state.log_handler is not None:
        logging.getLogger().removeHandler(state.log_handler)
    try:
        state.providers.shutdown(state.flush_timeout)
    except Exception:
        logger.debug("telemetry shutdown failed", exc_info=True)


def active_hooks() -> TaskTelemetry | None:
    """This process's task hooks, when it exports telemetry."""
    state = _state
    return state.hooks if state is not None and state.pid == os.getpid() else None


def active_consumer() -> ConsumerTracing | None:
    """This process's attempt receivers, when it set telemetry up (``python -m benchmarks
    hooks`` times them)."""
    state = _state
    return state.consumer if state is not None and state.pid == os.getpid() else None
