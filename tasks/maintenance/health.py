"""The health check: the conditions the deployment alerts on, evaluated by the kit itself.

Redis (reachable, memory, persistence), workers (Celery's broadcast ping), queue backlogs and
the failure rate over the last ``KIT_HEALTH_WINDOW`` seconds (from :mod:`project.ops.counters`),
each against its threshold. The failure rate counts only once ``KIT_ALERT_MIN_FINISHED`` tasks
(20) finished in the window, the rule of the failure-rate alert in deploy/prometheus/alerts.yml
(20 finished runs in 5 minutes; the alert counts per task, this check over all queues). Every
breach is logged as one warning and counted; the figures are recorded as gauges, so the same
numbers reach the metrics backend and the alert rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from opentelemetry import metrics

from project.broker.queues import queue_keys
from project.ops import counters as stats
from tasks.maintenance.settings import MaintenanceSettings

__all__ = ["HealthReport", "check_health"]

logger = logging.getLogger(__name__)

MEMORY_RATIO = 0.9  # used / maxmemory above which Redis is about to refuse writes

_meter = metrics.get_meter("project.health")
_workers = _meter.create_gauge("kit.health.workers", unit="{worker}")
_backlog = _meter.create_gauge("kit.health.backlog", unit="{task}")
_failure_rate = _meter.create_gauge("kit.health.failure_rate", unit="1")
_redis_up = _meter.create_gauge("kit.health.redis_up", unit="1")
_breaches = _meter.create_counter("kit.health.breaches", unit="{breach}")


@dataclass
class HealthReport:
    redis_up: bool = False
    redis: dict[str, Any] = field(default_factory=dict)
    workers: int = 0
    backlog: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    failed: int = 0
    failure_rate_counted: bool = False  # enough tasks finished for the rate to mean something
    breaches: list[dict[str, str]] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        total = self.processed + self.failed
        return self.failed / total if total else 0.0

    def breach(self, check: str, message: str) -> None:
        self.breaches.append({"check": check, "message": message})
        logger.warning("health: %s", message)
        _breaches.add(1, {"check": check})

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": not self.breaches,
            "redis_up": self.redis_up,
            "redis": self.redis,
            "workers": self.workers,
            "backlog": self.backlog,
            "processed": self.processed,
            "failed": self.failed,
            "failure_rate": round(self.failure_rate, 4),
            "failure_rate_counted": self.failure_rate_counted,
            "breaches": self.breaches,
        }


def check_health(
    app: Any,
    client: redis.Redis,
    queues: list[str],
    settings: MaintenanceSettings,
    ping_timeout: float = 1.0,
) -> HealthReport:
    report = HealthReport()
    try:
        client.ping()
        info = client.info()
    except redis.RedisError as exc:
        report.breach("redis", f"Redis is unreachable: {exc}")
        _redis_up.set(0)
        return report
    report.redis_up = True
    _redis_up.set(1)
    _check_redis(info, report)
    report.workers = len(app.control.ping(timeout=ping_timeout) or [])
    _workers.set(report.workers)
    if report.workers == 0:
        report.breach("workers", "no worker answered a ping: tasks are not being processed")
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in queue_keys(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    per_queue = len(queue_keys("q"))
    for i, queue in enumerate(queues):
        depth = sum(lengths[i * per_queue : (i + 1) * per_queue])
        report.backlog[queue] = depth
        _backlog.set(depth, {"task.queue": queue})
        if depth > settings.alert_backlog:
            report.breach(
                "backlog", f"queue {queue} has {depth} tasks waiting (> {settings.alert_backlog})"
            )
    window = stats.totals(client, [*queues, "unknown"], settings.health_window)
    report.processed = sum(q["processed"] for q in window.values())
    report.failed = sum(q["failed"] for q in window.values())
    _failure_rate.set(report.failure_rate)
    report.failure_rate_counted = report.processed + report.failed >= settings.alert_min_finished
    if report.failure_rate_counted and report.failure_rate > settings.alert_failure_rate:
        report.breach(
            "failure_rate",
            f"{report.failure_rate:.1%} of tasks failed in the last {settings.health_window} s "
            f"(> {settings.alert_failure_rate:.0%}; {report.failed} of "
            f"{report.processed + report.failed})",
        )
    return report


def _check_redis(info: dict[str, Any], report: HealthReport) -> None:
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    report.redis = {
        "used_memory": used,
        "maxmemory": limit,
        "aof_enabled": bool(info.get("aof_enabled", 0)),
        "aof_last_write_status": info.get("aof_last_write_status"),
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
    if limit and used / limit > MEMORY_RATIO:
        report.breach("redis_memory", f"Redis uses {used / limit:.0%} of its maxmemory")
    for field_name in ("aof_last_write_status", "rdb_last_bgsave_status"):
        status = info.get(field_name)
        if status not in (None, "ok"):
            report.breach("redis_persistence", f"Redis {field_name} is {status!r}")
