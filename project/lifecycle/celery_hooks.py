"""Where Celery reaches a kit app's :class:`~project.lifecycle.middleware.Pipeline`.

* :class:`KitAMQP` (the app's ``amqp`` class) marks each publish as the kit app's; the one
  ``before_task_publish`` receiver then calls ``before_publish`` for that app only. Another
  Celery app's messages in the same process pass untouched (Celery's signals are process-wide).
* :class:`PipelineStep`, a consumer bootstep, calls ``worker_start/stop/shutdown``.
* process-wide receivers, connected once by :func:`connect` (called by ``create_app``, not at
  import), pass ``worker_init``, ``worker_process_init/shutdown``, ``beat_init`` and the
  failures Celery reports only by signal (a pool process lost too often) to the kit app
  concerned, and ignore every other app.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import bootsteps, signals
from celery.app.amqp import AMQP

from project.broker.connections import BrokerConnection
from project.errors import PublishRoundTripError
from project.lifecycle.kit import Kit, is_kit_app, kit_of
from project.lifecycle.middleware import Publish

__all__ = [
    "KitAMQP",
    "PipelineStep",
    "connect",
    "forget_result_subscriptions_at_exit",
    "move_publish_receiver_last",
    "publishing",
]

#: The kit whose message is being published in this context (None: another app's).
_publishing: contextvars.ContextVar[Kit | None] = contextvars.ContextVar(
    "kit_publishing", default=None
)
#: The kit app this worker process runs (set at worker_init, inherited by prefork children).
_worker_kit: Kit | None = None
_connected = False
_lock = threading.Lock()


@contextmanager
def publishing(kit: Kit) -> Iterator[None]:
    """Messages published (``before_task_publish`` sent) meanwhile are ``kit``'s."""
    token = _publishing.set(kit)
    try:
        yield
    finally:
        _publishing.reset(token)


class KitAMQP(AMQP):  # type: ignore[misc]
    """Celery's AMQP helper, marking the publishes that belong to its (kit) app; its broker
    connections keep the kit's transport through a failover (``BrokerConnection``)."""

    Connection = BrokerConnection

    def _create_task_sender(self) -> Any:
        send = super()._create_task_sender()
        kit = kit_of(self.app)

        def send_task_message(producer: Any, *args: Any, **kwargs: Any) -> Any:
            # The message, its bell and its task-sent event in one round trip, where the
            # channel can (project.broker.transport.Channel.pipelined_publish); if that round
            # trip is lost, once more the ordinary way, through kombu's retries.
            pipelined = getattr(producer.channel, "pipelined_publish", None)
            with publishing(kit):
                if pipelined is None:
                    return send(producer, *args, **kwargs)
                try:
                    with pipelined():
                        return send(producer, *args, **kwargs)
                except PublishRoundTripError:
                    if kwargs.get("retry") is False:
                        raise
                    return send(producer, *args, **kwargs)

        return send_task_message


class PipelineStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """The consumer's life, told to the app's middleware (main process)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        kit_of(c.app).pipeline.worker_start(c)

    def stop(self, c: Any) -> None:
        kit_of(c.app).pipeline.worker_stop(c)

    def shutdown(self, c: Any) -> None:
        kit_of(c.app).pipeline.worker_shutdown(c)


def _on_before_publish(
    sender: Any = None,
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    kit = _publishing.get()
    if kit is None or headers is None or properties is None:
        return
    kit.pipeline.before_publish(Publish(str(sender), headers, properties, routing_key))


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    global _worker_kit
    app = getattr(sender, "app", None)
    if not is_kit_app(app):
        return
    _worker_kit = kit_of(app)
    _worker_kit.pipeline.worker_init(sender)
    # Prefork children run tasks (process_init after fork); other pools run them here.
    if not _is_prefork(sender):
        _worker_kit.pipeline.process_init()


def _on_process_init(**_: Any) -> None:
    if _worker_kit is not None:
        _worker_kit.pipeline.process_init()


def _on_process_shutdown(**_: Any) -> None:
    if _worker_kit is not None:
        _worker_kit.pipeline.process_shutdown()


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if is_kit_app(app) and not _is_prefork(sender):
        kit_of(app).pipeline.process_shutdown()


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if is_kit_app(app):
        kit_of(app).pipeline.beat_init(sender)


def _on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """A task whose pool process died more than ``max_retries`` times (task_retry_on_worker_lost)
    fails in the worker's main process, where Celery sends ``task_failure`` but never calls
    ``on_failure``: tell the middleware here, like any other task that failed for good."""
    if not isinstance(exception, WorkerLostError) or not task_id:
        return
    if is_kit_app(getattr(sender, "app", None)) and hasattr(sender, "failed_for_good"):
        sender.failed_for_good(exception, task_id, args, kwargs, einfo)


def _is_prefork(worker: Any) -> bool:
    """Whether the worker's pool forks children (Celery's prefork pool, or the kit's)."""
    pool = getattr(worker, "pool_cls", None)
    if isinstance(pool, type):
        from celery.concurrency.prefork import TaskPool

        return issubclass(pool, TaskPool)
    return "prefork" in str(pool)


def connect() -> None:
    """Connect the kit's process-wide receivers, once per process (idempotent)."""
    global _connected
    with _lock:
        if _connected:
            return
        signals.before_task_publish.connect(_on_before_publish, weak=False)
        signals.worker_init.connect(_on_worker_init, weak=False)
        signals.worker_process_init.connect(_on_process_init, weak=False)
        signals.worker_process_shutdown.connect(_on_process_shutdown, weak=False)
        signals.worker_shutdown.connect(_on_worker_shutdown, weak=False)
        signals.beat_init.connect(_on_beat_init, weak=False)
        signals.task_failure.connect(_on_task_failure, weak=False)
        _connected = True


def move_publish_receiver_last() -> None:
    """Reconnect the publish receiver after receivers connected since (the OpenTelemetry Celery
    instrumentation's), so its span is the current one in ``before_publish``."""
    if _connected:
        signals.before_task_publish.disconnect(_on_before_publish)
        signals.before_task_publish.connect(_on_before_publish, weak=False)


def forget_result_subscriptions_at_exit(app: Any) -> None:
    """At interpreter exit, drop the result channels this process subscribed to.

    Celery's Redis backend subscribes to each published task's result channel and unsubscribes
    when the task's ``AsyncResult`` is garbage-collected. At exit that happens after Python has
    begun to shut down, the unsubscribe needs a new connection that can no longer be made, and
    every ``kit`` command or producer that published printed a traceback as it left. Redis drops
    a closed connection's subscriptions by itself, so nothing is lost by forgetting them.
    """
    ref = weakref.ref(app)

    def forget() -> None:
        made = ref()
        # The backend is per thread (Celery keeps it in app._local); never make one here.
        backend = getattr(getattr(made, "_local", None), "backend", None)
        consumer = getattr(backend, "result_consumer", None)
        subscribed = getattr(consumer, "subscribed_to", None)
        if isinstance(subscribed, set):
            subscribed.clear()

    atexit.register(forget)
