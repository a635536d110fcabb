"""A task's life on a kit app, and the middleware that acts at each step, in order.

``create_app`` builds one :class:`~project.lifecycle.middleware.Pipeline` per app from
:func:`default_middleware`. At each step every middleware that has the hook is called, in the
list's order; none may raise (see :mod:`project.lifecycle.middleware`).

=================  =============================================  ==========================
step               where it runs                                  middleware (in order)
=================  =============================================  ==========================
before_apply       the producer: ``apply_async``, ``send_task``    DurableDelay
before_publish     inside Celery's publish (producer span set)    Stamp, Telemetry
worker_init        worker main process, before it connects        RedisCheck, Telemetry,
                                                                  GcFreeze
process_init       each process that runs tasks                   Telemetry, GcFreeze
worker_start       consumer started (again after a reconnect)     Pause, Leases, DurableDelay
                                                                  (its forwarder), Flushing,
                                                                  GcFreeze (first start)
before_run         the pool process, before the task body         Retries (drops a stale
                                                                  redelivery), SingleFlightRun
classify           the body raised: retry it, and when?           Retries
after_body         the body returned, before the result is saved  LockRelease
on_retry           a retry was published                          Telemetry
on_success         result stored, before the ack                  Counters
on_failure         failed for good, before the ack                Telemetry, Retries (archive),
                                                                  Counters, LockRelease
after_run          after the body, whatever happened              SingleFlightRun
after_return       last, after the outcome hooks                  (none by default)
process_shutdown   a process that ran tasks exits                 Telemetry, Counters
worker_stop        consumer stops (reconnect, shutdown)           Pause, Leases
worker_shutdown    the worker exits                               Telemetry, Counters, Leases,
                                                                  DurableDelay, Flushing,
                                                                  GcFreeze (unfreezes)
beat_init          beat starts                                    RedisCheck, Telemetry
=================  =============================================  ==========================

An attempt's span and its metrics (a success's duration, the counts, the queue wait) are not
middleware: :class:`~project.telemetry.consumer.ConsumerTracing` makes them in Celery's
``task_prerun``/``task_postrun`` signals, around everything above from ``before_run`` to
``after_return`` (the stock instrumentation's span covers the same), in one pass over the
request. Telemetry's ``on_retry``/``on_failure`` record the outcome of an attempt that did not
succeed, which needs its error.

The acknowledgement itself is Celery's (late ack, after ``on_success``/``on_failure``; a
retry's message is acknowledged once its successor is published). Fetch, redelivery and the
``unacked`` record are the transport's (:mod:`project.broker.transport`). The cost of each hook
per task, measured, is in the README ("Benchmarks": `python -m benchmarks hooks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from project.lifecycle.middleware import Middleware, Pipeline

if TYPE_CHECKING:
    from project.lifecycle.kit import Kit

__all__ = ["Middleware", "Pipeline", "default_middleware"]


def default_middleware(kit: Kit) -> list[Middleware]:
    """The kit's middleware for one app, in the order of the table above."""
    from project.broker.checks import RedisCheck
    from project.broker.lease import Leases
    from project.broker.pause import Pause
    from project.broker.queues import Stamp
    from project.delay.forwarder import DurableDelay
    from project.enqueue.aggregation import Flushing
    from project.enqueue.dedup import LockRelease, SingleFlightRun
    from project.lifecycle.freezing import GcFreeze
    from project.ops.counters import Counters
    from project.retries.middleware import Retries
    from project.telemetry.middleware import Telemetry

    return [
        Stamp(kit.settings.tasks.default_priority),
        RedisCheck(),
        Telemetry(),
        DurableDelay(),
        Pause(),
        Leases(),
        Flushing(),
        Retries(),  # before SingleFlightRun: a stale copy must not take (or wait for) a lock
        SingleFlightRun(),
        Counters(lambda: kit.redis),
        LockRelease(),
        GcFreeze(kit.settings.tasks.gc_freeze),
    ]
