"""Each task attempt's metrics, logged as it starts and succeeds and recorded a batch at a time
before every collection.

Why: an attempt feeds five measurements (``messaging.client.consumed.messages``,
``kit.task.queue_wait``, ``kit.task.duration``, ``messaging.process.duration``,
``kit.tasks.processed``), and recording each as it happens cost about 25 us per attempt in the
worker (a lock, a bisect and a handful of updates each, between a task's other work, where code
and data are cold). An attempt now appends one tuple as it starts and one as it succeeds to the
lists of its (task, queue) series; :meth:`AttemptLog.drain` records them all, in a loop whose
code stays warm, when the metrics are collected (the histogram exporter and the counters'
callbacks each drain first) or when a list grows long (:data:`DRAIN_AT`), so what is exported
is exactly what recording at once would export.

Appending is thread-safe without a lock (one C call under the GIL); draining takes the first
``n`` items of a list and deletes exactly those, so an append made meanwhile waits for the next
drain instead of being lost.
"""

from __future__ import annotations

import threading
from typing import Any

from project.telemetry.histograms import KitHistogram, Measurement

__all__ = ["DRAIN_AT", "AttemptLog", "AttemptSeries"]

#: Entries a list holds before the attempt that fills it drains its series: about 4 s of a
#: busy process at 2,500 attempts/s, far below the minute between default metric exports.
DRAIN_AT = 10_000


class AttemptSeries:
    """Where the attempts of one task from one queue count (held by the task hooks: nothing is
    hashed per attempt), and their measurements not recorded yet."""

    __slots__ = (
        "consumed",
        "duration",
        "ended",
        "process",
        "processed",
        "started",
        "wait",
    )

    def __init__(
        self, consumed: list[Any], wait: Any, duration: Any, process: Any, processed: list[Any]
    ) -> None:
        self.consumed = consumed  # the messaging counter's entry
        self.wait = wait  # the queue-wait histogram's series
        self.duration = duration  # the success series: a retry or a failure records at once
        self.process = process  # messaging.process.duration's series
        self.processed = processed  # kit.tasks.processed's entry
        # (seconds waited or None, exemplar ids or None, when): one per attempt started
        self.started: list[Measurement] = []
        # (seconds it ran, exemplar ids or None, when): one per attempt that succeeded
        self.ended: list[Measurement] = []


class AttemptLog:
    """The attempt series of one process and the instruments they are recorded in."""

    def __init__(
        self,
        queue_wait: KitHistogram,
        duration: KitHistogram,
        process_duration: KitHistogram,
        consumed: Any,
        processed: Any,
    ) -> None:
        self.queue_wait = queue_wait
        self.duration = duration
        self.process_duration = process_duration
        self.consumed = consumed  # the Tally of messaging.client.consumed.messages
        self.processed = processed  # the Tally of kit.tasks.processed
        self._series: list[AttemptSeries] = []
        self._lock = threading.Lock()  # one drain at a time

    def add(self, series: AttemptSeries) -> AttemptSeries:
        with self._lock:
            self._series.append(series)
        return series

    def drain(self) -> None:
        """Record every logged measurement (called before each collection)."""
        with self._lock:
            for series in self._series:
                self._drain(series)

    def drain_series(self, series: AttemptSeries) -> None:
        """Record one series' measurements now (its list grew long)."""
        with self._lock:
            self._drain(series)

    def _drain(self, series: AttemptSeries) -> None:
        started = series.started
        taken = len(started)
        if taken:
            batch = started[:taken]
            del started[:taken]  # exactly these: an append made meanwhile stays
            self.consumed.bump(series.consumed, taken)
            self.queue_wait.record_many(series.wait, batch)
        ended = series.ended
        taken = len(ended)
        if taken:
            done = ended[:taken]
            del ended[:taken]
            self.processed.bump(series.processed, taken)
            self.duration.record_many(series.duration, done)
            self.process_duration.record_many(series.process, done)
