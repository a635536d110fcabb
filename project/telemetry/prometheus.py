"""``OTEL_METRICS_EXPORTER=prometheus``: the worker serves ``/metrics`` for all its processes.

Prefork children cannot each serve a port, and must not lose their counts when recycled. So
each child's meter provider writes a snapshot of its cumulative metrics to a file of its own
(atomically, every export interval and as it exits), and the worker's main process serves the
sum of all snapshots. A dead child's counters and histograms are folded into a ``retired``
total, so the sums never go backwards; its gauges stand only until a live process reports them.

Histogram buckets carry exemplars (the latest per bucket over all processes: the trace and
span id of a sampled attempt, OpenTelemetry's ``trace_based`` exemplar filter), shown when a
scraper asks for OpenMetrics (``Accept: application/openmetrics-text``): a slow bucket of
``kit_task_duration_seconds`` leads to a slow trace.

Names follow the OpenTelemetry-to-Prometheus conventions the Collector uses as well:
``kit.tasks.failed`` becomes ``kit_tasks_failed_total``, ``kit.task.duration`` (seconds)
``kit_task_duration_seconds``, attribute ``task.name`` label ``task_name``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.metrics.export import Gauge as GaugeData
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Sum as SumData
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

__all__ = ["MergedCollector", "SnapshotExporter", "serve_metrics", "snapshot_directory"]

_RETIRED = "retired.json"
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
_lock = threading.Lock()


def snapshot_directory(owner_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"kit-metrics-{owner_pid}"


class SnapshotExporter(MetricExporter):
    """Writes this process's cumulative metrics to ``<directory>/<pid>.json``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            preferred_temporality={
                kind: AggregationTemporality.CUMULATIVE
                for kind in (Counter, ObservableCounter, UpDownCounter, Histogram, ObservableGauge)
            }
        )
        self.directory = directory

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = list(_serialise(metrics_data))
        target = self.directory / f"{os.getpid()}.json"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, {"pid": os.getpid(), "points": points})
        except OSError:
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _serialise(data: MetricsData) -> Iterator[dict[str, Any]]:
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                base = {"name": metric.name, "unit": metric.unit or "", "help": metric.description}
                if isinstance(metric.data, HistogramData):
                    for hp in metric.data.data_points:
                        yield {
                            **base,
                            "kind": "histogram",
                            "attributes": dict(hp.attributes or {}),
                            "bounds": list(hp.explicit_bounds),
                            "buckets": list(hp.bucket_counts),
                            "sum": hp.sum,
                            "count": hp.count,
                            "exemplars": _exemplars(hp.exemplars, hp.explicit_bounds),
                        }
                elif isinstance(metric.data, SumData | GaugeData):
                    monotonic = isinstance(metric.data, SumData) and metric.data.is_monotonic
                    for np in metric.data.data_points:
                        yield {
                            **base,
                            "kind": "counter" if monotonic else "gauge",
                            "attributes": dict(np.attributes or {}),
                            "value": np.value,
                        }


def _exemplars(exemplars: Any, bounds: Any) -> dict[str, dict[str, Any]]:
    """The latest exemplar with a trace per bucket (index as a string key, for JSON)."""
    by_bucket: dict[str, dict[str, Any]] = {}
    for exemplar in exemplars or ():
        if not exemplar.trace_id:
            continue
        index = str(bisect.bisect_left(list(bounds), exemplar.value))
        by_bucket[index] = {
            "trace_id": format(exemplar.trace_id, "032x"),
            "span_id": format(exemplar.span_id or 0, "016x"),
            "value": float(exemplar.value),
            "time": exemplar.time_unix_nano / 1e9,
        }
    return by_bucket


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    os.replace(temporary, path)


def _key(point: dict[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return point["name"], tuple(sorted(point["attributes"].items()))


def _add(into: dict[tuple[Any, ...], dict[str, Any]], point: dict[str, Any]) -> None:
    key = _key(point)
    current = into.get(key)
    if current is None:
        into[key] = json.loads(json.dumps(point))  # a copy we may mutate
    elif point["kind"] == "histogram" and current["bounds"] == point["bounds"]:
        current["buckets"] = [
            a + b for a, b in zip(current["buckets"], point["buckets"], strict=True)
        ]
        current["sum"] += point["sum"]
        current["count"] += point["count"]
        exemplars = current.setdefault("exemplars", {})
        for index, exemplar in (point.get("exemplars") or {}).items():
            if index not in exemplars or exemplars[index]["time"] < exemplar["time"]:
                exemplars[index] = exemplar
    elif point["kind"] == "counter":
        current["value"] += point["value"]
    elif point["kind"] == "gauge":
        current["value"] = max(current["value"], point["value"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MergedCollector(Collector):
    """Sums the snapshots in ``directory`` at each scrape."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        with _lock:
            merged = self._merge()
        return [_family(points) for points in _group_by_name(merged.values())]

    def _merge(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        retired_path = self.directory / _RETIRED
        saved = _load(retired_path)
        retired: dict[tuple[Any, ...], dict[str, Any]] = {}
        for point in saved.get("points", []):
            _add(retired, point)
        # The last gauge values of dead processes stand in until a live process reports the
        # same series (a recycled child's replacement has not exported yet).
        last_gauges = {_key(p): p for p in saved.get("gauges", [])}
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        retired_changed = False
        for path in sorted(self.directory.glob("[0-9]*.json")):
            snapshot = _load(path)
            pid = int(snapshot.get("pid", 0))
            if pid and not _alive(pid):
                for point in snapshot.get("points", []):
                    if point["kind"] == "gauge":
                        last_gauges[_key(point)] = point
                    else:
                        _add(retired, point)
                retired_changed = True
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            for point in snapshot.get("points", []):
                _add(merged, point)
        if retired_changed:
            _write_atomically(
                retired_path,
                {"points": list(retired.values()), "gauges": list(last_gauges.values())},
            )
        for point in retired.values():
            _add(merged, point)
        for key, point in last_gauges.items():
            merged.setdefault(key, point)
        return merged


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def _group_by_name(points: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        groups.setdefault(point["name"], []).append(point)
    yield from groups.values()


def _prometheus_name(name: str, unit: str) -> str:
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    suffix = _UNITS.get(unit)
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


def _labels(point: dict[str, Any]) -> dict[str, str]:
    return {re.sub(r"[^a-zA-Z0-9_]", "_", k): str(v) for k, v in point["attributes"].items()}


def _family(points: list[dict[str, Any]]) -> Metric:
    first = points[0]
    name = _prometheus_name(first["name"], first["unit"])
    label_names = sorted({k for p in points for k in _labels(p)})
    help_text = first.get("help") or first["name"]

    def values(point: dict[str, Any]) -> list[str]:
        labels = _labels(point)
        return [labels.get(k, "") for k in label_names]

    family: Metric
    if first["kind"] == "histogram":
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        for p in points:
            cumulative, buckets = 0, []
            exemplars = p.get("exemplars") or {}
            bounds = [*p["bounds"], float("inf")]
            for index, (bound, count) in enumerate(zip(bounds, p["buckets"], strict=True)):
                cumulative += count
                label = "+Inf" if bound == float("inf") else repr(float(bound))
                exemplar = exemplars.get(str(index))
                if exemplar is None:
                    buckets.append((label, cumulative))
                else:
                    ids = {"trace_id": exemplar["trace_id"], "span_id": exemplar["span_id"]}
                    example = Exemplar(ids, exemplar["value"], exemplar["time"])
                    buckets.append((label, cumulative, example))  # type: ignore[arg-type]
            family.add_metric(values(p), buckets, p["sum"])
    elif first["kind"] == "counter":
        family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=label_names)
        for p in points:
            family.add_metric(values(p), p["value"])
    else:
        family = GaugeMetricFamily(name, help_text, labels=label_names)
        for p in points:
            family.add_metric(values(p), p["value"])
    return family


def serve_metrics(directory: Path, host: str, port: int) -> Any:
    """Start the ``/metrics`` HTTP server in a daemon thread of the calling process."""
    from prometheus_client import CollectorRegistry, start_http_server

    directory.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(directory))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
