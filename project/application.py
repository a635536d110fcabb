"""``create_app``: the one place a kit app is built, and its configuration, with the reason for
each safe default.

``create_app(settings)`` returns a complete app: Celery's configuration, the kit's task class,
its middleware (:mod:`project.lifecycle`), the consumer step and publish hook that call them,
the router, and the catalog. ``celery -A project worker|beat|flower`` finds :data:`project.app`
(``create_app(current_settings())``, made on first use) through the package root. Nothing here
runs at import time.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from project.broker.connections import tls_options
from project.broker.lease import RESTORE_INTERVAL
from project.broker.queues import (
    PRIORITY_SEP,
    PRIORITY_STEPS,
    STRICT_CYCLE,
    WEIGHTED_CYCLE,
    DeclaredQueueRouter,
    declare_queues,
)
from project.broker.settings import default_concurrency
from project.broker.transport import SENTINEL_TRANSPORT, TRANSPORT
from project.broker.urls import SentinelTarget, is_sentinel, uses_tls
from project.lifecycle import catalog, celery_hooks, default_middleware
from project.lifecycle.kit import Kit, attach
from project.lifecycle.kit_celery import KitCelery
from project.lifecycle.middleware import Pipeline
from project.periodic.beat import beat_config
from project.settings import Settings
from project.telemetry.logs import TASK_LOG_FORMAT

__all__ = ["celery_config", "create_app"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for the kit, derived from the environment's :class:`Settings`."""
    return {
        "broker_url": settings.redis.url,
        # kombu's Redis transport with queue-major fetching (see project.broker.transport).
        "broker_transport": SENTINEL_TRANSPORT if is_sentinel(settings.redis.url) else TRANSPORT,
        "broker_transport_options": {
            # A dead worker's unacknowledged messages come back after this many seconds; live
            # workers renew the leases of the ones they hold (project.broker.lease).
            "visibility_timeout": settings.broker.visibility_timeout,
            "unacked_restore_interval": RESTORE_INTERVAL,
            "unacked_restore_throttle": 1,
            "unacked_restore_limit": 1000,
            "queue_order_strategy": STRICT_CYCLE
            if settings.broker.strict_priority
            else WEIGHTED_CYCLE,
            "queue_weights": dict(settings.broker.queue_weights),
            "priority_steps": list(PRIORITY_STEPS),
            "sep": PRIORITY_SEP,
            # Detect half-open connections (NAT, failover) instead of blocking in BRPOP forever.
            "socket_keepalive": True,
            "health_check_interval": 25,
            **_sentinel_options(settings, settings.redis.url),
        },
        "result_backend": settings.redis.result_backend,
        "result_backend_transport_options": {
            "retry_policy": {"timeout": 5.0},
            **_sentinel_options(settings, settings.redis.result_backend),
        },
        # JSON only, both ways: a pickled message can run arbitrary code when decoded, so the
        # worker refuses it (and archives it, see project.broker.consumer) instead of executing it.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Acknowledge after running, so a worker that dies mid-task leaves the message to return.
        "task_acks_late": True,
        # ...and a child killed mid-task (OOM, SIGKILL) runs it again instead of failing it: as a
        # retry (counted against max_retries, then archived), so a task that kills every
        # process it runs in is not requeued forever.
        "task_reject_on_worker_lost": True,
        "task_retry_on_worker_lost": True,
        # A redelivered message whose task already succeeded (its acknowledgement was lost in
        # a shutdown or an outage) is not run again: the worker checks the result first.
        "worker_deduplicate_successful_tasks": True,
        # One message per process: a long task never holds others hostage in a local buffer.
        "worker_prefetch_multiplier": settings.broker.prefetch_multiplier,
        "worker_concurrency": settings.broker.concurrency or default_concurrency(),
        # Celery's prefork pool, writing a task to an idle child as it arrives instead of on
        # the event loop's next turn (named, not imported: a producer never loads it).
        "worker_pool": "project.lifecycle.prefork:TaskPool",
        # Reconnect at start-up and after outages, without giving up: orchestrators decide
        # through readiness probes, not a retry count that kills workers during a long outage.
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "broker_channel_error_retry": True,
        # A lost connection does not cancel running tasks: each one's message is recorded in
        # Redis (the fetch script pops and records it in one step) and returns only if this
        # worker dies, so letting it finish is safe, and cancelling it would run it twice. One
        # that is redelivered after it succeeded is skipped (worker_deduplicate_successful_tasks).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Results are kept long enough to be read, not forever (Redis memory).
        "result_expires": settings.broker.result_expires,
        # Each result also names its task, arguments, queue and worker (no extra Redis command:
        # the same SET, larger): the state model lists a queue's completed tasks from them.
        "result_extended": True,
        # Events on by default: Flower's live views are built from them. A worker publishes
        # them in batches (project.broker.events), so three events per task cost one message
        # per 10 ms; KIT_TASK_EVENTS=false turns them off.
        "worker_send_task_events": settings.broker.task_events,
        "task_send_sent_event": settings.broker.task_events,
        # SIGTERM is a warm shutdown: running tasks finish, held ETA messages go back to Redis.
        # A cold shutdown (SIGQUIT, or a second SIGTERM) first gives running tasks this long
        # (also when idle, so ETA/countdown messages held in memory are restored, not lost),
        # then stops them; their late-acknowledged messages return to the queue.
        "worker_soft_shutdown_timeout": settings.broker.soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        # No task runs unbounded: a soft limit raises inside it, the hard limit kills the child.
        "task_soft_time_limit": settings.tasks.soft_time_limit,
        "task_time_limit": settings.tasks.time_limit,
        "task_queues": declare_queues(settings.broker.queue_weights),
        "task_default_queue": "default",
        "task_default_priority": settings.tasks.default_priority,
        # Refused messages are archived, not dropped.
        "worker_consumer": "project.broker.consumer:Consumer",
        "imports": settings.tasks.modules,
        "timezone": settings.beat.timezone,
        "enable_utc": True,
        # Task log lines carry trace_id and span_id (project.telemetry.logs).
        "worker_task_log_format": TASK_LOG_FORMAT,
        # One beat at a time, its schedule in Redis (project.periodic.beat).
        **beat_config(settings.redis.url, settings.beat.lock_timeout),
        **_tls_config(settings),
        **_beat_sentinel_config(settings),
    }


def _sentinel_options(settings: Settings, url: str) -> dict[str, Any]:
    return {"master_name": settings.redis.sentinel_master} if is_sentinel(url) else {}


def _beat_sentinel_config(settings: Settings) -> dict[str, Any]:
    """redbeat takes Sentinel as a ``redis-sentinel://`` URL plus the addresses as options."""
    if not is_sentinel(settings.redis.url):
        return {}
    target = SentinelTarget.parse(settings.redis.url)
    return {
        "redbeat_redis_url": "redis-sentinel://",
        "redbeat_redis_options": {
            "sentinels": target.addresses,
            "service_name": settings.redis.sentinel_master,
            "password": target.password,
            "db": target.db,
            "socket_timeout": 5.0,
        },
    }


def _tls_config(settings: Settings) -> dict[str, Any]:
    """The same verified TLS for every Redis connection Celery and redbeat make."""
    config: dict[str, Any] = {}
    if uses_tls(settings.redis.url):
        config["broker_use_ssl"] = tls_options(settings.redis)
        config["redbeat_redis_use_ssl"] = tls_options(settings.redis)
    if uses_tls(settings.redis.result_backend):
        config["redis_backend_use_ssl"] = tls_options(settings.redis)
    return config


def create_app(settings: Settings, *, main: str = "project") -> Celery:
    """A complete kit app for ``settings``, independent of any other app in the process.

    It is not made Celery's current app (``celery worker`` makes the app it runs current), so
    creating one never redirects another app's ``shared_task`` calls.
    """
    celery_app = KitCelery(
        main,
        task_cls="project.lifecycle.task:KitTask",
        amqp="project.lifecycle.celery_hooks:KitAMQP",
        set_as_current=False,
    )
    celery_app.config_from_object(celery_config(settings))
    celery_app.conf.task_routes = (DeclaredQueueRouter(celery_app),)
    kit = Kit(celery_app, settings, Pipeline(()))
    kit.pipeline = Pipeline(default_middleware(kit))
    attach(celery_app, kit)
    celery_app.steps["consumer"].add(celery_hooks.PipelineStep)
    celery_hooks.connect()
    celery_hooks.forget_result_subscriptions_at_exit(celery_app)
    catalog.bind(celery_app)
    # Finalized now, so a task defined later with @app.task is made at once: Celery's lazy
    # task proxies are not safe to evaluate from many threads at the same time.
    celery_app.finalize()
    return celery_app
