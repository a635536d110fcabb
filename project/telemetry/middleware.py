"""Telemetry as the kit's middleware: set up per process, and the task hooks at each step.

Prefork children set telemetry up after ``fork`` (gRPC channels and exporter threads do not
survive it), other pools in the worker's main process, beat at its start; each flushes as it
exits. With ``OTEL_METRICS_EXPORTER=prometheus`` the worker's main process serves ``/metrics``,
summing what every child (recycled ones included) recorded.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from project.lifecycle.kit import Kit, kit_of
from project.lifecycle.middleware import Middleware, Publish
from project.telemetry.logs import install_log_correlation
from project.telemetry.settings import load_telemetry_settings
from project.telemetry.setup import active_hooks, setup_telemetry, shutdown_telemetry

__all__ = ["Telemetry"]

logger = logging.getLogger(__name__)


class Telemetry(Middleware):
    def __init__(self) -> None:
        load_telemetry_settings()  # a malformed OTEL_* variable stops the app here, not later
        install_log_correlation()
        self.hostname: str | None = None
        self.snapshot_dir: Path | None = None  # set in the main process, inherited by children
        self._kit: Kit | None = None
        self._metrics_server: Any = None

    # -- process life ----------------------------------------------------------------------

    def worker_init(self, worker: Any) -> None:
        from project.telemetry.providers import warn_once_per_process_tree

        warn_once_per_process_tree()  # before the pool forks: one warning for all its children
        self.hostname = getattr(worker, "hostname", None)
        self._kit = kit_of(worker.app)
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

    def process_init(self) -> None:
        setup_telemetry("worker", self.hostname, self.snapshot_dir, self._kit)

    def process_shutdown(self) -> None:
        shutdown_telemetry()

    def worker_shutdown(self, consumer: Any) -> None:
        shutdown_telemetry()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None

    def beat_init(self, beat: Any) -> None:
        setup_telemetry("beat")

    # -- messages and attempts -------------------------------------------------------------

    def before_publish(self, message: Publish) -> None:
        hooks = active_hooks()
        if hooks is not None:
            hooks.on_before_publish(message.task_name, message.headers, message.routing_key)

    def on_retry(self, task: Any, exc: BaseException) -> None:
        hooks = active_hooks()
        if hooks is not None:
            hooks.on_retry(task, exc)

    def on_failure(self, task: Any, exc: BaseException, einfo: Any) -> None:
        hooks = active_hooks()
        if hooks is not None:
            hooks.on_failure(task, exc)
