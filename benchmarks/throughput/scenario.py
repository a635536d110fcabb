"""Worker throughput on no-op tasks: stock Celery, the kit, and the kit minus one safe default.

Each kit default is reverted on its own, so the table says what each one costs; one more
scenario reverts them all, so whatever gap to stock Celery remains belongs to the kit's
transport, queues and app rather than to these settings. The scenarios run interleaved
(:mod:`benchmarks.core.rounds`), each from an empty Redis: the tasks are pre-loaded first
(:mod:`benchmarks.throughput.preload`), then one worker (:mod:`benchmarks.throughput.kit_tasks`
or :mod:`benchmarks.throughput.plain_app`) is started and timed until none is left.

:class:`Scenario` and :func:`run_worker` also serve the telemetry benchmark, whose scenarios
are the kit's default worker with different ``OTEL_*`` settings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from benchmarks.core.bodies import BROKER_URL_ENV
from benchmarks.core.jsonable import record
from benchmarks.core.measure import POLL_INTERVAL, BenchmarkError, Measurement, QueueProbe, measure
from benchmarks.core.processes import PrivateRedis, Worker, child_env
from benchmarks.core.report import table
from benchmarks.core.rounds import Turn, interleave, order_note
from benchmarks.core.session import Session
from benchmarks.core.stats import RateSummary, summarize
from benchmarks.throughput import overrides
from benchmarks.throughput.preload import AppKind, preload, producer_app
from project.keys import ARCHIVE_INDEX

__all__ = [
    "KIT_TASKS_MODULE",
    "SCENARIOS",
    "RunRecord",
    "Scenario",
    "celery_worker_env",
    "describe",
    "log_errors_section",
    "raw_rates_section",
    "run_throughput",
    "run_worker",
    "select",
    "summaries",
    "summary_dict",
    "vet_worker_log",
    "worker_params",
]

KIT_TASKS_MODULE = "benchmarks.throughput.kit_tasks"
#: Worker log errors that mean a message was acknowledged without running the task: such a
#: run's count is wrong. Other errors (a broken signal handler, say) are reported, not fatal.
FATAL_LOG_MARKERS = (
    "CRITICAL/",
    "bench.noop[",  # Celery's "Task bench.noop[<id>] raised ..."
    "Received unregistered task",
    "Can't decode message body",
    "refused message",  # the kit's consumer archiving a message it would not run
)
MAX_LOG_ERRORS = 5  # distinct non-fatal error lines kept per run


def celery_worker_env(
    app: AppKind,
    redis_url: str,
    kit_env: Mapping[str, str],
    conf: Mapping[str, overrides.Scalar],
    drop: Sequence[str] = (),
) -> dict[str, str]:
    """The variables a stock Celery or kit worker needs on top of the scrubbed environment."""
    if app == "plain":
        return {BROKER_URL_ENV: redis_url}
    extra = {"REDIS_URL": redis_url, "KIT_IMPORTS": KIT_TASKS_MODULE, **kit_env}
    if conf:
        extra[overrides.ENV_VAR] = overrides.encode(conf)
    if drop:
        extra[overrides.DROP_ENV] = ",".join(drop)
    return extra


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    change: str  # what differs from the kit's defaults, for the table
    app: AppKind
    kit_env: Mapping[str, str] = field(default_factory=dict)
    conf: Mapping[str, overrides.Scalar] = field(default_factory=dict)
    worker_args: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()  # kit middleware taken out of the worker's pipeline

    def command(self) -> list[str]:
        target = "benchmarks.throughput.plain_app" if self.app == "plain" else "project"
        return ["-A", target, "worker", *self.worker_args]

    def env(self, redis_url: str) -> dict[str, str]:
        return child_env(celery_worker_env(self.app, redis_url, self.kit_env, self.conf, self.drop))


_EARLY_ACK: dict[str, overrides.Scalar] = {"task_acks_late": False}
_NO_EVENTS: dict[str, overrides.Scalar] = {
    "worker_send_task_events": False,
    "task_send_sent_event": False,  # producer-side only; the pre-load is off the clock
}
_IGNORE_RESULT: dict[str, overrides.Scalar] = {"task_ignore_result": True}
_NO_TIME_LIMITS: dict[str, overrides.Scalar] = {
    "task_time_limit": None,
    "task_soft_time_limit": None,
}
_PREFETCH_4 = {"KIT_PREFETCH_MULTIPLIER": "4"}
_NO_TELEMETRY = {"OTEL_SDK_DISABLED": "true"}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("plain", "plain Celery defaults", "stock Celery app, no kit", "plain"),
    Scenario("kit", "kit default", "none (KIT_* unset)", "kit"),
    Scenario(
        "kit-prefetch-4", "kit, prefetch 4", "KIT_PREFETCH_MULTIPLIER=4", "kit", kit_env=_PREFETCH_4
    ),
    Scenario("kit-early-ack", "kit, late ack off", "task_acks_late=False", "kit", conf=_EARLY_ACK),
    Scenario(
        "kit-no-events",
        "kit, task events off",
        "worker_send_task_events=False, task_send_sent_event=False",
        "kit",
        conf=_NO_EVENTS,
    ),
    Scenario(
        "kit-ignore-result",
        "kit, result storage off",
        "task_ignore_result=True",
        "kit",
        conf=_IGNORE_RESULT,
    ),
    Scenario(
        "kit-no-time-limits",
        "kit, time limits off",
        "task_time_limit=None, task_soft_time_limit=None",
        "kit",
        conf=_NO_TIME_LIMITS,
    ),
    Scenario(
        "kit-no-telemetry",
        "kit, telemetry off",
        "OTEL_SDK_DISABLED=true",
        "kit",
        kit_env=_NO_TELEMETRY,
    ),
    Scenario(
        "kit-no-lease",
        "kit, lease renewal off",
        "Leases middleware taken out",
        "kit",
        drop=("Leases",),
    ),
    Scenario(
        "kit-no-counters",
        "kit, task counters off",
        "Counters middleware taken out",
        "kit",
        drop=("Counters",),
    ),
    Scenario(
        "kit-all-reverted",
        "kit, all of the above reverted",
        "all of the above",
        "kit",
        kit_env={**_PREFETCH_4, **_NO_TELEMETRY},
        conf={**_EARLY_ACK, **_NO_EVENTS, **_IGNORE_RESULT, **_NO_TIME_LIMITS},
        drop=("Leases", "Counters"),
    ),
)


def select(keys: Sequence[str], scenarios: Sequence[Scenario] = SCENARIOS) -> tuple[Scenario, ...]:
    """The named scenarios in table order; all of them when none is named."""
    if not keys:
        return tuple(scenarios)
    known = {scenario.key for scenario in scenarios}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise BenchmarkError(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    return tuple(scenario for scenario in scenarios if scenario.key in keys)


@dataclass(frozen=True)
class RunRecord:
    scenario: str
    repeat: int  # 0-based repetition
    order: int  # position in the interleaved sequence, to spot drift
    measurement: Measurement
    preload_seconds: float
    results_stored: int  # keys in the result database after the run (a sanity check)
    log_errors: tuple[str, ...] = ()  # non-fatal ERROR lines from the worker, deduplicated

    def as_dict(self) -> dict[str, object]:
        return {
            **record(self, "scenario", "repeat", "order"),
            **self.measurement.as_dict(),
            **record(self, "preload_s=preload_seconds", "results_stored"),
            "log_errors": list(self.log_errors),
        }


def run_throughput(
    bench: Session, scenarios: Sequence[Scenario], *, tasks: int, repeat: int
) -> list[RunRecord]:
    """Every scenario ``repeat`` times, interleaved, each from an empty Redis."""
    redis = bench.redis

    def run(scenario: Scenario, turn: Turn) -> RunRecord:
        redis.flushall()
        app = producer_app(scenario.app, redis.url, scenario.kit_env, scenario.conf)
        began = time.monotonic()
        try:
            preload(app, tasks)
        finally:
            app.close()
        return run_worker(bench, scenario, tasks, turn, time.monotonic() - began)

    return interleave(scenarios, repeat, run, lambda _, run: describe(run))


def run_worker(
    bench: Session,
    scenario: Scenario,
    tasks: int,
    turn: Turn,
    preload_seconds: float,
    before_kill: Callable[[], object] = lambda: None,
    on_start: Callable[[Worker], object] = lambda worker: None,
) -> RunRecord:
    """Once the ``tasks`` are pre-loaded: start the scenario's worker, time it until none is
    left, and vet its log. ``on_start`` is called with the worker as the clock starts,
    ``before_kill`` as soon as it stops, before the worker is killed (the telemetry benchmark
    reads the CPU its worker spent, then waits there for the last spans)."""
    redis = bench.redis
    probe = QueueProbe.discover(redis.client)
    if (queued := probe.remaining()) != tasks:
        raise BenchmarkError(f"{scenario.key}: pre-loaded {queued} messages, expected {tasks}")
    log_path = bench.workdir / f"{turn.order:03d}-{scenario.key}.log"
    spawned_at = time.monotonic()
    with Worker(scenario.command(), scenario.env(redis.url), log_path) as worker:
        measurement = measure(
            probe, worker, tasks, spawned_at=spawned_at, on_start=lambda: on_start(worker)
        )
        before_kill()
        errors = worker.logged_errors()
    return RunRecord(
        scenario=scenario.key,
        repeat=turn.repeat,
        order=turn.order,
        measurement=measurement,
        preload_seconds=preload_seconds,
        results_stored=redis.keys_in_db(1),
        log_errors=vet_worker_log(redis, scenario.key, errors),
    )


def describe(run: RunRecord, suffix: str = "") -> list[str]:
    """A run's progress line, then each non-fatal worker log error."""
    m = run.measurement
    return [
        f"{run.scenario}: {m.rate:,.0f} tasks/s "
        f"({m.counted} in {m.elapsed:.2f} s; start-up {m.startup:.1f} s{suffix})",
        *(f"    worker log error (not fatal): {line}" for line in run.log_errors),
    ]


def summaries(
    scenarios: Sequence[Scenario], runs: Sequence[RunRecord]
) -> list[tuple[Scenario, RateSummary]]:
    """Each scenario that ran, in table order, with its rates."""
    rates = summarize((r.scenario, r.measurement.rate) for r in runs)
    return [(s, rates[s.key]) for s in scenarios if s.key in rates]


def summary_dict(scenario: Scenario, s: RateSummary, **ratios: float | None) -> dict[str, object]:
    """A scenario's summary as the JSON files record it, its ratios last."""
    return {
        "scenario": scenario.key,
        "label": scenario.label,
        "change": scenario.change,
        **s.as_dict(),
        **ratios,
    }


def worker_params(
    command: str, args: argparse.Namespace, scenarios: Sequence[Scenario], worker: str
) -> dict[str, object]:
    """The parameters every worker-throughput report states (the telemetry one adds more);
    ``args`` are the command's (``--tasks``, ``--repeat``)."""
    return {
        "command": command,
        "tasks_per_run": args.tasks,
        "repeat": args.repeat,
        "order": order_note(args.repeat, (s.key for s in scenarios)),
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "worker": worker,
        "measure": "acknowledged messages (queue lists + unacked hash), first to last",
    }


def vet_worker_log(redis: PrivateRedis, key: str, errors: Sequence[str]) -> tuple[str, ...]:
    """Raise if a Celery worker's errors (or the kit's archive) say a message was acknowledged
    without running; otherwise the distinct non-fatal error lines, for the report."""
    fatal = [line for line in errors if any(mark in line for mark in FATAL_LOG_MARKERS)]
    if archived := redis.client.zcard(ARCHIVE_INDEX):
        fatal.append(f"{archived} message(s) in the kit's archive ({ARCHIVE_INDEX})")
    if fatal:
        raise BenchmarkError(
            f"{key}: the worker logged task errors, so 'processed' may not mean "
            "'ran':\n" + "\n".join(fatal[:10])
        )
    return _distinct_messages(errors)


def _distinct_messages(lines: Sequence[str]) -> tuple[str, ...]:
    """Each error once, without the timestamp and process prefix that make every line unique."""
    seen: dict[str, None] = {}
    for line in lines:
        seen.setdefault(line.split("] ", 1)[-1], None)
    return tuple(seen)[:MAX_LOG_ERRORS]


def raw_rates_section(scenarios: Sequence[Scenario], runs: Sequence[RunRecord]) -> str:
    """Every run's rate, scenario by scenario: the figures the medians come from."""
    repeats = max((r.repeat for r in runs), default=-1) + 1
    rows = []
    for scenario in scenarios:
        own = sorted((r for r in runs if r.scenario == scenario.key), key=lambda r: r.repeat)
        if own:
            startup = statistics.median(r.measurement.startup for r in own)
            rates = [f"{r.measurement.rate:,.1f}" for r in own]
            rows.append([scenario.key, *rates, f"{startup:.1f}", own[-1].results_stored])
    header = ["Scenario", *(f"run {i + 1}" for i in range(repeats))]
    header += ["start-up s (median)", "results stored (last run)"]
    return "## Raw rates (tasks/s, in run order within each scenario)\n\n" + table(
        header, rows, "l" + "r" * (repeats + 2)
    )


def log_errors_section(runs: Sequence[RunRecord]) -> str:
    """Errors the workers logged that did not invalidate a run, still worth a reader's eye."""
    by_message: dict[str, set[str]] = {}
    for run in runs:
        for message in run.log_errors:
            by_message.setdefault(message, set()).add(run.scenario)
    if not by_message:
        return ""
    items = "\n".join(
        f"- {', '.join(sorted(scenarios))}: `{message}`"
        for message, scenarios in by_message.items()
    )
    return f"## Worker log errors (not about the benchmark task)\n\n{items}"
